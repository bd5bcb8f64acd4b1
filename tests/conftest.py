"""Shared fixtures: the Kubernetes API emulator (tests/kubeemu) for every tier that needs it."""

pytest_plugins = ["kubeemu.fixtures"]
