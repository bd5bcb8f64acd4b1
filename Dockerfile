# One image for the operator, the trainer and the model server:
#   modelops operator | modelops train … | modelops serve … | modelops drift …
# Multi-stage: wheels are built in the first stage, the runtime stage has no compiler.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelops-operator" \
      org.opencontainers.image.description="Train, govern, serve with canaries and watch drift of ML models on Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin modelops
USER 10001:10001
ENTRYPOINT ["modelops"]
CMD ["operator"]
