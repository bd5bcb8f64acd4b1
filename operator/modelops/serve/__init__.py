"""The model server, ``modelops serve``: one model version behind the Open Inference Protocol v2 REST API.

Layers, from the bottom up; each one is importable and testable without the ones above it:

- :mod:`~modelops.serve.contract` reads the trainer's ``result.json`` into a typed contract;
- :mod:`~modelops.serve.tensors` is the binary tensor data extension: the body's framing, binary
  tensors in and out (pure, no I/O);
- :mod:`~modelops.serve.codec` decodes and validates v2 inference requests, converting every value
  to what the model was trained on, and encodes responses (pure, no I/O);
- :mod:`~modelops.serve.metrics` lays out every exported series in one flat array, bins batches
  into it with numpy and renders the Prometheus exposition (pure maths plus a file-backed store);
- :mod:`~modelops.serve.artifact` fetches an artifact and verifies its sha256;
- :mod:`~modelops.serve.predictor` loads the model, settles what each input takes (by asking it),
  and predicts, through a compiled numpy path where that is proven equal to the pipeline's own
  output at load time;
- :mod:`~modelops.serve.explain` explains rows: each input column's contribution to the output
  (exact for linear models, TreeSHAP for tree ensembles), folded back from the derived features;
- :mod:`~modelops.serve.app` routes a request to a response, independent of any HTTP server;
- :mod:`~modelops.serve.server` is the HTTP/1.1 layer (an asyncio protocol on httptools + uvloop);
- :mod:`~modelops.serve.supervisor` runs several worker processes on one listening socket;
- :mod:`~modelops.serve.cli` is ``modelops serve``.
"""
