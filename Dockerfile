# One image for the operator, the trainer and the model server:
#   modelops operator | modelops train … | modelops serve … | modelops drift …
# and the kubectl plugin (kubectl-modelops), for a debugging shell or a CI job.
#
#   make image                                    # docker build on the official python image
#   make image BASE_IMAGE=modelops-base:bookworm  # on a base made from Debian's packages
#                                                 # (deploy/image/debian-base.sh), no registry needed
#
# Multi-stage: the dependencies are installed in the first stage (keyed by pyproject.toml alone, so
# CI caches it: .ci/run), the package is added and the environment trimmed to what the commands run
# in the second (no pip, no tests, no headers or sources of compiled extensions, deploy/image/slim.sh);
# the runtime stage gets only that environment and runs as a non-root user. Every process works under any uid (also one
# that is not in /etc/passwd) with a read-only root filesystem and a writable /tmp.
# The default base is pinned to an exact Python patch release and Debian release. Pin it by digest
# too (python:3.11.15-slim-bookworm@sha256:…) where your registry policy asks for it.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

FROM ${PYTHON_IMAGE} AS deps
# Build stages only: CI removes their untagged leftovers by this label.
LABEL io.modelops.stage=build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
RUN python3 -m venv /opt/modelops
WORKDIR /src
# The dependencies first, from pyproject.toml alone: a change to the sources reuses this layer.
# Wheels only (the runtime has no compiler); binutils for strip (deploy/image/slim.sh), in this
# stage only. EXTRA_CA_CERTS (PEM text) is trusted for these downloads only — for a proxy that
# re-signs TLS, as corporate ones do — and stays in this stage: the published image has neither
# the certificates nor the build argument.
COPY pyproject.toml ./
ARG EXTRA_CA_CERTS=""
RUN set -eu; \
    cat /etc/ssl/certs/ca-certificates.crt > /tmp/ca.pem; \
    if [ -n "$EXTRA_CA_CERTS" ]; then printf '%s\n' "$EXTRA_CA_CERTS" >> /tmp/ca.pem; fi; \
    apt-get -o Acquire::https::CAInfo=/tmp/ca.pem update -qq; \
    apt-get -o Acquire::https::CAInfo=/tmp/ca.pem install -y -qq --no-install-recommends binutils >/dev/null; \
    /opt/modelops/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))' > /tmp/requirements.txt; \
    PIP_CERT=/tmp/ca.pem /opt/modelops/bin/pip install -q --only-binary=:all: -r /tmp/requirements.txt "setuptools>=77" wheel; \
    rm -f /tmp/ca.pem
# Then the package itself (offline: its build backend is already in the environment) and the
# environment trimmed to what the commands run, their bytecode written by running them
# (deploy/image/slim.sh says what goes and why). The entry points must work afterwards.
FROM deps AS build
COPY README.md ./
COPY operator ./operator
COPY deploy/image/slim.sh deploy/image/warm.py /usr/local/share/modelops-build/
RUN set -eu; \
    /opt/modelops/bin/pip install -q --no-deps --no-build-isolation --no-compile . ; \
    sh /usr/local/share/modelops-build/slim.sh /opt/modelops; \
    /opt/modelops/bin/modelops --help >/dev/null; \
    test -x /opt/modelops/bin/kubectl-modelops

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelops-operator" \
      org.opencontainers.image.description="Train, govern, serve with canaries and watch drift of ML models on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
# HOME: a user id that /etc/passwd does not know (OpenShift's restricted policy assigns one) has
# no home directory to look up; /tmp is the pods' writable emptyDir.
ENV PATH=/opt/modelops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modelops
COPY --from=build /opt/modelops /opt/modelops
# The chart runs it as 10001 too (runAsNonRoot needs a numeric user to verify).
USER 10001:10001
# Model servers listen on 8080; the operator serves /healthz on 8080, /metrics on 8081 and its
# admission webhooks on 9443.
EXPOSE 8080 8081 9443
ENTRYPOINT ["modelops"]
CMD ["operator"]
