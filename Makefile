# The two commands a fresh machine needs:
#   make test     — a virtual environment with everything the tests need, then every check and the
#                   default test tier (make test-slow: the slow tier; make test-all: both)
#   make kind-up  — (needs Docker) a kind cluster with the image, the chart and the examples
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
IMAGE ?= modelops-operator:dev
KIND_CLUSTER ?= modelops
# The image's base: the official python image, or one made without a registry from Debian's
# packages (deploy/image/debian-base.sh; .ci/run does that when no registry answers).
BASE_IMAGE ?= python:3.11.15-slim-bookworm
# Extra CA certificates this machine trusts (a TLS-intercepting proxy's), trusted by the build's
# downloads only, never copied into the image.
EXTRA_CA_CERTS ?= $(wildcard /usr/local/share/ca-certificates/*.crt)
DOCKER_BUILD_FLAGS ?=

.PHONY: test test-slow test-all venv lint unit crds trusted-types install-manifests argocd-health image test-image kind-up kind-down e2e clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

lint: venv
	$(PY) -m ruff check operator tests bench
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m modelops crds --output crds --check
	$(PY) -m modelops crds --output charts/modelops-operator/crds --check
	$(PY) tests/packaging/render_install.py --check
	$(PY) tests/packaging/render_argocd.py --check

# The default tier: every check and every test but the slow ones (about ten minutes on two cores).
test: lint
	$(PY) -m pytest -m "not slow"

# The slow tier (`slow` marker): the whole-loop scenarios, exhaustive sweeps over every estimator and
# request shape, several real servers per test. CI runs it after `make test`.
test-slow: venv
	$(PY) -m pytest -m slow

# Both tiers, as CI runs them.
test-all: test test-slow

crds: venv
	$(PY) -m modelops crds --output crds
	$(PY) -m modelops crds --output charts/modelops-operator/crds
	$(PY) tests/packaging/render_install.py

# The types a skops artifact may hold: trains every allow-listed estimator (about a minute);
# tests/serve/test_trusted_types.py fails while the committed list is stale.
trusted-types: venv
	$(PY) -m modelops.serve.trusted --write

# manifests/install: the chart rendered as plain YAML (checked by `make lint`)
install-manifests: venv
	$(PY) tests/packaging/render_install.py

# deploy/argocd: the four kinds' Argo CD health checks from one template (checked by `make lint`)
argocd-health: venv
	$(PY) tests/packaging/render_argocd.py

# The image of the operator, the trainer and the model server (Dockerfile).
image:
	docker build --force-rm $(DOCKER_BUILD_FLAGS) --build-arg PYTHON_IMAGE=$(BASE_IMAGE) \
	  --build-arg EXTRA_CA_CERTS="$$(cat /dev/null $(EXTRA_CA_CERTS))" -t $(IMAGE) .

# The image tier (tests/image): the image built, then its pods run as containers (needs Docker).
test-image: venv image
	MODELOPS_IMAGE=$(IMAGE) MODELOPS_IMAGE_REQUIRE=1 $(PY) -m pytest tests/image

# The Prometheus Operator's CRDs (ServiceMonitor, PrometheusRule) the operator writes.
PROM_OPERATOR_VERSION ?= v0.81.0
PROM_CRDS := https://raw.githubusercontent.com/prometheus-operator/prometheus-operator/$(PROM_OPERATOR_VERSION)/example/prometheus-operator-crd

kind-up:
	@command -v docker >/dev/null || { echo "make kind-up needs Docker (and kind, helm, kubectl)"; exit 1; }
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --wait 120s
	$(MAKE) image IMAGE=$(IMAGE)
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	kubectl apply --server-side -f charts/modelops-operator/crds/
	kubectl apply --server-side -f $(PROM_CRDS)/monitoring.coreos.com_servicemonitors.yaml \
	  -f $(PROM_CRDS)/monitoring.coreos.com_prometheusrules.yaml
	kubectl wait --for=condition=Established crd --all --timeout=60s
	helm upgrade --install modelops charts/modelops-operator --namespace modelops-system --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=Never --wait --timeout 5m
	kubectl -n modelops-system rollout status deployment/modelops-operator --timeout=180s
	kubectl create namespace ml --dry-run=client -o yaml | kubectl apply -f -
	kubectl apply -f deploy/kind/artifacts-pvc.yaml
	kubectl apply -f manifests/examples/
	kubectl wait -n ml --for=jsonpath='{.status.observedGeneration}'=1 \
	  trainingruns.modelops.io,modelversions.modelops.io,modeldeployments.modelops.io,driftpolicies.modelops.io \
	  --all --timeout=180s
	kubectl wait -n ml --for=condition=Ready trainingruns.modelops.io --all --timeout=900s

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

e2e: venv
	$(PY) -m pytest -m e2e tests/e2e

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
