"""modelops-operator: the whole life of a machine-learning model as Kubernetes resources."""

__version__ = "0.1.0"
