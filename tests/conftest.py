"""Shared fixtures: the Kubernetes API emulator (tests/kubeemu) and the operator on it (tests/operatorkit.py),
and a real Prometheus (tests/promkit.py)."""

pytest_plugins = ["kubeemu.fixtures", "operatorkit", "promkit"]
