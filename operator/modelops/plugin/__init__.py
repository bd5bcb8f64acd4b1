"""`kubectl modelops`: the kubectl plugin (console script kubectl-modelops)."""
