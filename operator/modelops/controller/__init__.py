"""The I/O layer: Kopf handlers, the operator process, and the clients they use."""
