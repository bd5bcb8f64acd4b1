# syntax=docker/dockerfile:1
# One image for the operator, the trainer and the model server:
#   modelops operator | modelops train … | modelops serve … | modelops drift …
# and the kubectl plugin (kubectl-modelops), for a debugging shell or a CI job.
#
# Multi-stage: the virtual environment is built in the first stage; the runtime stage gets only
# that environment — no compiler, no pip cache, no sources — and runs as a non-root user.
# The base is pinned to an exact Python patch release and Debian release. Pin it by digest too
# (python:3.11.15-slim-bookworm@sha256:…) where your registry policy asks for it.
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/modelops
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# Bytecode now (the root filesystem is read-only at run time); the entry points must work.
RUN /opt/modelops/bin/pip install . \
 && /opt/modelops/bin/python -m compileall -q /opt/modelops/lib \
 && /opt/modelops/bin/modelops --help >/dev/null \
 && test -x /opt/modelops/bin/kubectl-modelops

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelops-operator" \
      org.opencontainers.image.description="Train, govern, serve with canaries and watch drift of ML models on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/modelops/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modelops
COPY --from=build /opt/modelops /opt/modelops
# The chart runs it as 10001 too (runAsNonRoot needs a numeric user to verify).
USER 10001:10001
# Model servers listen on 8080; the operator serves /healthz on 8080, /metrics on 8081 and its
# admission webhooks on 9443.
EXPOSE 8080 8081 9443
ENTRYPOINT ["modelops"]
CMD ["operator"]
