"""The v2 REST routes as one function from (method, target, body) to a response, free of any HTTP server.

:meth:`App.handle` is what the HTTP layer calls for every complete request. The inference path
of the served model is matched by comparing raw bytes against targets precomputed at start-up;
everything else goes through :meth:`App._route`. Requests to the model API are counted in the
metrics by status code and timed; ``/metrics``, the ``/v2/health`` probes and ``/feedback`` (counted
per label in its own series) are not, so that scrapes, kubelet probes and labels do not dilute the
error rate and latency the canary analysis reads; ``/explain`` requests (:mod:`modelops.serve.explain`)
are counted and timed in series of their own.

With feedback on (:mod:`modelops.serve.feedback`), every inference answer carries its request's
prediction id, and a classifier's every served row adds its probabilities to the expected confusion
matrix whether or not the client asked for them (a classifier without probabilities has neither the
``predict_proba`` output nor that matrix; its labels are counted like any other's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import numpy as np
import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modelops.serve import explain, feedback, metrics, tensors
from modelops.serve.codec import (
    InputPlan,
    Output,
    RequestError,
    decode_doc,
    decode_infer,
    encode_error,
    encode_infer,
    encode_json,
    make_plan,
    parse_body,
    single_row,
)
from modelops.serve.predictor import Predictor

JSON = b"content-type: application/json\r\n"
BINARY = b"content-type: application/octet-stream\r\n"
#: (status, extra header lines including content-type, body)
Response = tuple[int, bytes, bytes]


def _json(status: int, doc: Any) -> Response:
    return status, JSON, orjson.dumps(doc)


def _error(status: int, message: str, extra: bytes = b"") -> Response:
    return status, JSON + extra, encode_error(message)


def build(
    model: Predictor,
    *,
    name: str,
    version: str,
    server_version: str,
    metrics_dir: Path | None = None,
    slot: int = 0,
    explain_max_rows: int = explain.DEFAULT_MAX_ROWS,
    feedback_settings: feedback.Settings | None = None,
) -> App:
    """The app of a loaded model: its input plan (from the contract the predictor settled) and metric layout."""
    contract = model.contract
    plan = make_plan(contract)
    layout = metrics.build_layout(
        model=name,
        version=version,
        classes=model.class_labels,
        expected=model.has_proba,
        prediction_bounds=model.prediction_bounds,
        numeric=[(s.name, plan.slots[s.name][1], s.interior) for s in contract.numeric_stats],
        categorical=[(s.name, plan.slots[s.name][1], s.categories) for s in contract.categorical_stats],
        feedback=feedback_settings is not None,
        sensitive=[(g, *_where(plan, g.name)) for g in contract.sensitive],
    )
    store = metrics.Store(layout, metrics_dir, slot)
    return App(
        model, plan, store, name=name, version=version, server_version=server_version,
        explain_max_rows=explain_max_rows,
        feedback_settings=feedback_settings,
    )  # fmt: skip


def _where(plan: InputPlan, name: str) -> tuple[bool, int]:
    """Whether an input is in the numeric matrix (else among the categorical labels), and its column."""
    categorical, column = plan.slots[name]
    return not categorical, column


class App:
    """Routes for one model version; see the module docstring."""

    def __init__(
        self,
        predictor: Predictor,
        plan: InputPlan,
        store: metrics.Store,
        *,
        name: str,
        version: str,
        server_version: str,
        explain_max_rows: int = explain.DEFAULT_MAX_ROWS,
        feedback_settings: feedback.Settings | None = None,
    ) -> None:
        self.predictor = predictor
        self.explainer = explain.Explainer(predictor)
        self.explain_max_rows = explain_max_rows
        self._explained = 0
        self.plan = plan
        self.store = store
        self.layout = store.layout
        self.values = store.values
        self.recorder = metrics.Recorder(store.layout, store.values)
        self.name = name
        self.version = version
        self.ready = True
        self._row_path = predictor.has_row_path and plan.all_numeric
        self._predict_datatype = predictor.predict_datatype
        # A classifier's rows always get probabilities: the expected confusion matrix needs them
        # (none for a classifier without probabilities: its labels are counted, nothing is estimated).
        self._estimate = predictor.has_proba
        self.feedback: feedback.Feedback | None = None
        if feedback_settings is not None:
            self.feedback = feedback.Feedback(
                feedback_settings, model=name, version=version, classes=predictor.class_labels,
                recorder=self.recorder, directory=store.directory, slot=store.slot,
                groups=tuple((slot.name, slot.groups[:-1]) for slot in store.layout.sensitive),
            )  # fmt: skip
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(metrics.Collector(store, self.feedback.families if self.feedback else None))
        #: Issues the prediction ids (None with feedback off).
        self.signer = self.feedback.signer if self.feedback is not None else None
        quoted = quote(name, safe="").encode()
        self._feedback_path = b"/v2/models/" + quoted + b"/feedback"
        quoted_version = quote(version, safe="").encode()
        self._infer_targets = {
            b"/v2/models/" + quoted + b"/infer",
            b"/v2/models/" + quoted + b"/versions/" + quoted_version + b"/infer",
        }
        contract = predictor.contract
        outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": contract.predict_datatype, "shape": [-1]}]
        if predictor.has_proba and predictor.class_labels is not None:
            outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(predictor.class_labels)]})
        self._metadata = _json(
            200,
            {
                "name": name,
                "versions": [version],
                "platform": contract.framework,
                "inputs": [{"name": f.name, "datatype": f.datatype, "shape": [-1]} for f in contract.features],
                "outputs": outputs,
                **({"parameters": {"feedback": True}} if self.feedback is not None else {}),
            },
        )
        self._model_ready = _json(200, {"name": name, "ready": True})
        self._server_metadata = _json(
            200, {"name": "modelops", "version": server_version, "extensions": ["binary_tensor_data"]}
        )
        self._live = _json(200, {"live": True})
        self._ready = _json(200, {"ready": True})
        self._not_ready = _json(503, {"ready": False})

    # -- entry point ------------------------------------------------------------------------------

    def handle(
        self, method: bytes, target: bytes, body: bytes, started: float, header_length: bytes | None = None
    ) -> Response:
        """Answer one request; ``started`` is its ``time.perf_counter()`` arrival time.

        ``header_length`` is the value of its ``Inference-Header-Content-Length`` header, if any
        (the binary tensor data extension, :mod:`modelops.serve.tensors`).
        """
        if method == b"POST" and target in self._infer_targets:
            response = self._infer(body, header_length)
        else:
            path = target.split(b"?", 1)[0]
            if path == b"/metrics" or path.startswith(b"/v2/health/"):
                return self._uncounted(method, path)
            if path.endswith(b"/explain"):  # counted apart: an explanation's cost is not the model API's latency
                self._explained = 0
                response = self._route(method, path, body, header_length)
                self.recorder.explain(response[0], time.perf_counter() - started, self._explained)
                return response
            if path == self._feedback_path and self.feedback is not None:
                return self.feedback.handle(method, body)
            response = self._route(method, path, body, header_length)
        self.recorder.request(response[0], time.perf_counter() - started)
        return response

    def count_rejected(self, status: int, started: float) -> None:
        """Count a request the HTTP layer refused before routing it (a body over the limit)."""
        self.recorder.request(status, time.perf_counter() - started)

    def flush_metrics(self) -> None:
        """Move this worker's pending observations into its metric array (see :class:`metrics.Recorder`)."""
        self.recorder.flush()

    def tick(self) -> None:
        """Once a second: flush the metrics, pick up rotated feedback keys."""
        self.recorder.flush()
        if self.feedback is not None:
            self.feedback.poll()

    # -- routes ------------------------------------------------------------------------------------

    def _uncounted(self, method: bytes, path: bytes) -> Response:
        if method not in (b"GET", b"HEAD"):
            return _error(405, f"method {method.decode()} not allowed on {path.decode()}", b"allow: GET\r\n")
        if path == b"/metrics":
            self.recorder.flush()
            return 200, f"content-type: {CONTENT_TYPE_LATEST}\r\n".encode(), generate_latest(self._registry)
        if path == b"/v2/health/live":
            return self._live
        if path == b"/v2/health/ready":
            return self._ready if self.ready else self._not_ready
        return _error(404, f"no route {path.decode(errors='replace')}")

    def _route(self, method: bytes, raw_path: bytes, body: bytes, header_length: bytes | None) -> Response:
        path = unquote(raw_path.decode("latin-1"))
        parts = path.strip("/").split("/")
        if parts == ["v2"]:
            return self._only(method, b"GET", lambda: self._server_metadata, path)
        if len(parts) < 3 or parts[:2] != ["v2", "models"]:
            return _error(404, f"no route {path}")
        name, rest = parts[2], parts[3:]
        if len(rest) >= 2 and rest[0] == "versions":
            version, rest = rest[1], rest[2:]
        else:
            version = None
        if rest == ["feedback"] and version is None and name == self.name:
            return _error(404, "feedback is not enabled on this server: start it with --feedback-keys")
        if rest not in ([], ["ready"], ["infer"], ["explain"]):
            return _error(404, f"no route {path}")
        if name != self.name:
            return _error(404, f"unknown model {name!r}; this server serves {self.name!r}")
        if version is not None and version != self.version:
            return _error(404, f"model {name!r} has no version {version!r}; this server serves {self.version!r}")
        if rest == ["infer"]:
            return self._only(method, b"POST", lambda: self._infer(body, header_length), path)
        if rest == ["explain"]:
            return self._only(method, b"POST", lambda: self._explain(body, header_length), path)
        if rest == ["ready"]:
            return self._only(method, b"GET", lambda: self._model_ready, path)
        return self._only(method, b"GET", lambda: self._metadata, path)

    @staticmethod
    def _only(method: bytes, allowed: bytes, answer: Callable[[], Response], path: str) -> Response:
        if method == allowed or (allowed == b"GET" and method == b"HEAD"):
            return answer()
        message = f"method {method.decode()} not allowed on {path}; use {allowed.decode()}"
        return _error(405, message, b"allow: " + allowed + b"\r\n")

    def _infer(self, body: bytes, header_length: bytes | None = None) -> Response:
        try:
            if header_length is None:
                doc = parse_body(body)
                if self._row_path:
                    fast = single_row(doc, self.plan)
                    if fast is not None:
                        return self._infer_row(*fast)
                decoded = decode_doc(doc, self.plan)
            else:
                head, binary = tensors.split_body(body, header_length)
                decoded = decode_doc(parse_body(head), self.plan, binary)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        except ValueError as exc:  # the binary framing (tensors.split_body)
            return _error(400, str(exc))
        try:
            want_proba = self._estimate or "predict_proba" in decoded.outputs
            prediction = self.predictor.predict_batch(decoded.numeric, decoded.categorical, want_proba)
        except ValueError as exc:
            # Raised by the model for input it cannot take, e.g. a category its encoder never saw.
            return _error(400, f"the model rejected the input: {exc}")
        except Exception as exc:  # a bug or a broken model: 500, and the server keeps serving
            return _error(500, f"prediction failed: {type(exc).__name__}: {exc}")
        # The metrics count what the model was given: the converted columns, not the request's text.
        layout, values = self.layout, self.values
        self.recorder.rows(decoded.numeric)
        if layout.categorical:
            metrics.observe_categories(layout, values, decoded.labels)
        rows = decoded.rows
        outputs: list[Output] = []
        for name in decoded.outputs:
            as_binary = name in decoded.binary_outputs
            if name == "predict":
                data: Any = prediction.predict
                if data.dtype.kind in "OUS":
                    data = [str(v) for v in data.tolist()]
                outputs.append(Output("predict", self._predict_datatype, [rows], data, as_binary))
            else:
                proba = prediction.proba
                assert proba is not None  # decode_infer only offers predict_proba to classifiers
                outputs.append(Output("predict_proba", "FP64", list(proba.shape), proba.ravel(), as_binary))
        feedback_id = None
        if prediction.class_index is not None:
            self.recorder.classes(prediction.class_index)
            groups: list[Any] = []
            if layout.sensitive:
                groups = metrics.observe_groups(layout, values, decoded.numeric, decoded.labels, prediction.class_index)
            if prediction.proba is not None:
                metrics.observe_expected(layout, values, prediction.class_index, prediction.proba)
            if self.signer is not None:
                feedback_id = self.signer.classes_of(prediction.class_index, groups)
        else:
            predicted = np.asarray(prediction.predict, dtype=np.float64)
            metrics.observe_predictions(layout, values, predicted)
            by_group: list[Any] = []
            if layout.sensitive:
                nothing = np.zeros(len(predicted), dtype=np.intp)
                by_group = metrics.observe_groups(layout, values, decoded.numeric, decoded.labels, nothing)
            if self.signer is not None:
                feedback_id = self.signer.values_of(predicted, by_group)
        return self._answer(decoded.request_id, outputs, feedback_id)

    def _explain(self, body: bytes, header_length: bytes | None) -> Response:
        """Per-row contributions (:mod:`modelops.serve.explain`) for a request shaped as for ``/infer``."""
        if self.explain_max_rows == 0:
            return _error(403, "explanations are turned off on this server (--explain-max-rows 0)")
        try:
            decoded = decode_infer(body, self.plan, header_length)
        except RequestError as exc:
            return _error(exc.status, exc.message)
        if decoded.rows > self.explain_max_rows:
            return _error(
                413, f"{decoded.rows} rows to explain; this server explains at most {self.explain_max_rows} rows per "
                "request (--explain-max-rows): send them in smaller batches",
            )  # fmt: skip
        try:
            explanation = self.explainer.explain(decoded.numeric, decoded.categorical)
        except explain.ExplainError as exc:
            return _error(exc.status, exc.message)
        except ValueError as exc:
            return _error(400, f"the model rejected the input: {exc}")
        except Exception as exc:  # a bug or a broken model: 500, and the server keeps serving
            return _error(500, f"explanation failed: {type(exc).__name__}: {exc}")
        self._explained = decoded.rows
        outputs, parameters = explain.tensors(explanation, binary=bool(decoded.binary_outputs))
        return self._answer(decoded.request_id, outputs, parameters=parameters)

    def _answer(
        self,
        request_id: str | None,
        outputs: list[Output],
        feedback_id: str | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Response:
        payload, head = encode_infer(self.name, self.version, request_id, outputs, feedback_id, parameters)
        if head is None:
            return 200, JSON, payload
        return 200, BINARY + b"inference-header-content-length: %d\r\n" % head, payload

    def _infer_row(self, row: list[float], wanted: tuple[str, ...], request_id: str | None) -> Response:
        """One numeric row, without numpy (see ``codec.single_row``): the same answer and metrics as :meth:`_infer`."""
        prediction = self.predictor.predict_row(row, self._estimate or "predict_proba" in wanted)
        recorder = self.recorder
        recorder.row(row)
        index = prediction.class_index
        feedback_id = None
        if index is not None:
            recorder.one_class(index)
            groups: list[int] = []
            if self.layout.sensitive:
                groups = recorder.groups(row, index)
            if prediction.proba is not None:
                recorder.expected(index, prediction.proba)
            if self.signer is not None:
                feedback_id = self.signer.one_class(index, groups)
        else:
            if math.isfinite(prediction.label):
                recorder.prediction(prediction.label)
            else:  # where a NaN goes is numpy's call (searchsorted), as in _infer
                metrics.observe_predictions(self.layout, self.values, np.array([prediction.label], dtype=np.float64))
            in_groups = recorder.groups(row, 0) if self.layout.sensitive else []
            if self.signer is not None:
                feedback_id = self.signer.one_value(prediction.label, in_groups)
        outputs: list[dict[str, Any]] = []
        for name in wanted:
            if name == "predict":
                outputs.append(
                    {"name": "predict", "datatype": self._predict_datatype, "shape": [1], "data": [prediction.label]}
                )
            else:
                proba = prediction.proba
                assert proba is not None  # single_row only offers predict_proba to classifiers
                outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [1, len(proba)], "data": proba})
        return 200, JSON, encode_json(self.name, self.version, request_id, outputs, feedback_id)
