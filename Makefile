# The two commands a fresh machine needs:
#   make test     — a virtual environment with everything the tests need, then every check and test
#   make kind-up  — (needs Docker) a kind cluster with the image, the chart and the examples
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
IMAGE ?= modelops-operator:dev
KIND_CLUSTER ?= modelops

.PHONY: test venv lint unit crds kind-up kind-down e2e clean

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

test: lint
	$(PY) -m pytest

crds: venv
	$(PY) -m modelops crds --output crds
	$(PY) -m modelops crds --output charts/modelops-operator/crds

kind-up:
	@command -v docker >/dev/null || { echo "make kind-up needs Docker (and kind, helm, kubectl)"; exit 1; }
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER) --wait 120s
	docker build -t $(IMAGE) .
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)
	kubectl apply --server-side -f crds/
	helm upgrade --install modelops charts/modelops-operator --namespace modelops-system --create-namespace \
	  --set image.repository=$(firstword $(subst :, ,$(IMAGE))) --set image.tag=$(lastword $(subst :, ,$(IMAGE))) \
	  --set image.pullPolicy=Never --wait
	kubectl create namespace ml --dry-run=client -o yaml | kubectl apply -f -
	kubectl apply -f manifests/examples/
	kubectl wait --for=jsonpath='{.status.observedGeneration}'=1 -n ml modelversions.modelops.io --all --timeout=120s

kind-down:
	kind delete cluster --name $(KIND_CLUSTER)

e2e: venv
	$(PY) -m pytest -m e2e tests/e2e

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
