"""``modelops serve`` as a real process: v2 conformance, predictions, bad input, metrics, start-up refusal.

The v2 client is Triton's ``tritonclient.http`` (it speaks the Open Inference Protocol REST API);
MLServer- and KServe-shaped payloads are sent by hand, following the spec.
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

from serve import modelkit
from serve.conftest import Server

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> Samples:
    r = server.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: Samples, name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in samples.items() if n == name and all((k, v) in ls for k, v in labels.items())]
    assert len(matches) == 1, (name, labels, matches)
    return matches[0]


def raw(server: Server, payload: bytes, read_until_close: bool = True) -> bytes:
    """Send raw bytes on a fresh connection and read the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(payload)
        if not read_until_close:
            return s.recv(65536)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def matrix_request(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "input-0", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}],
            **extra}  # fmt: skip


@pytest.fixture(scope="module")
def iris_server(models: dict[str, modelkit.ModelDir]) -> Iterator[Server]:
    server = Server(models["iris"].path, "--max-body-bytes", "4096", "--name", "flowers", "--version", "v7")
    yield server.wait_ready()
    server.close()


# -- protocol conformance with a real v2 client -----------------------------------------------------


def test_triton_client_health_and_metadata(bc_server: Server, models: dict[str, modelkit.ModelDir]) -> None:
    m = models["breast_cancer"]
    client = triton.InferenceServerClient(url=f"127.0.0.1:{bc_server.port}")
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready(m.name)
        assert client.is_model_ready(m.name, "1")
        assert client.get_server_metadata()["name"] == "modelops"
        meta = client.get_model_metadata(m.name)
        assert meta["name"] == m.name
        assert meta["versions"] == ["1"]
        assert meta["platform"] == "scikit-learn"
        assert [i["name"] for i in meta["inputs"]] == m.features
        assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
        assert client.get_model_metadata(m.name, "1") == meta
    finally:
        client.close()


def test_triton_client_infer_matrix_and_columns(bc_server: Server, models: dict[str, modelkit.ModelDir]) -> None:
    m = models["breast_cancer"]
    x = m.test_x.to_numpy(dtype=np.float64)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{bc_server.port}")
    try:
        tensor = triton.InferInput("input-0", list(x.shape), "FP64")
        tensor.set_data_from_numpy(x, binary_data=False)
        outputs = [triton.InferRequestedOutput("predict", binary_data=False),
                   triton.InferRequestedOutput("predict_proba", binary_data=False)]  # fmt: skip
        result = client.infer(m.name, [tensor], outputs=outputs, request_id="req-1")
        np.testing.assert_array_equal(result.as_numpy("predict"), m.pipeline.predict(m.test_x))
        np.testing.assert_allclose(result.as_numpy("predict_proba"), m.pipeline.predict_proba(m.test_x), rtol=1e-12)
        response = result.get_response()
        assert response["id"] == "req-1"
        assert response["model_name"] == m.name
        assert response["model_version"] == "1"

        columns = []
        for j, name in enumerate(m.features):
            col = triton.InferInput(name, [len(x)], "FP32" if j % 2 else "FP64")
            col.set_data_from_numpy(x[:, j].astype(np.float32 if j % 2 else np.float64), binary_data=False)
            columns.append(col)
        result = client.infer(m.name, columns, model_version="1")
        expected = m.pipeline.predict(m.test_x.astype(np.float32).astype(np.float64))
        np.testing.assert_array_equal(result.as_numpy("predict"), expected)
        assert result.as_numpy("predict_proba") is None
    finally:
        client.close()


def test_triton_client_defaults_binary_in_and_out(bc_server: Server, models: dict[str, modelkit.ModelDir]) -> None:
    """What tritonclient sends without being told otherwise: binary tensors, binary outputs."""
    m = models["breast_cancer"]
    x = m.test_x.to_numpy(dtype=np.float64)
    client = triton.InferenceServerClient(url=f"127.0.0.1:{bc_server.port}")
    try:
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        tensor = triton.InferInput("input-0", list(x.shape), "FP64")
        tensor.set_data_from_numpy(x)
        result = client.infer(m.name, [tensor])  # no outputs: binary_data_output
        response = result.get_response()
        assert response["outputs"][0]["parameters"] == {"binary_data_size": 8 * len(x)}
        assert "data" not in response["outputs"][0]
        np.testing.assert_array_equal(result.as_numpy("predict"), m.pipeline.predict(m.test_x))
        outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
        columns = []
        for j, name in enumerate(m.features):
            column = triton.InferInput(name, [len(x), 1], "FP32")
            column.set_data_from_numpy(x[:, j : j + 1].astype(np.float32))
            columns.append(column)
        result = client.infer(m.name, columns, outputs=outputs)
        rounded = m.test_x.astype(np.float32).astype(np.float64)
        np.testing.assert_array_equal(result.as_numpy("predict"), m.pipeline.predict(rounded))
        np.testing.assert_allclose(result.as_numpy("predict_proba"), m.pipeline.predict_proba(rounded), rtol=1e-12)
        assert result.as_numpy("predict_proba").shape == (len(x), 2)
    finally:
        client.close()


def test_mlserver_and_kserve_payload_shapes(bc_server: Server, models: dict[str, modelkit.ModelDir]) -> None:
    m = models["breast_cancer"]
    x = m.test_x.to_numpy()[:3]
    # MLServer's numpy codec: nested data, content_type np.
    body = {"inputs": [{"name": "predict", "shape": [3, 30], "datatype": "FP64", "data": x.tolist(),
                        "parameters": {"content_type": "np"}}], "parameters": {"content_type": "np"}}  # fmt: skip
    r = bc_server.post(f"/v2/models/{m.name}/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == m.pipeline.predict(m.test_x[:3]).tolist()
    # MLServer's pandas codec: one [N, 1] column per feature, content_type pd; the versioned route.
    body = {"parameters": {"content_type": "pd"}, "inputs": [
        {"name": n, "shape": [3, 1], "datatype": "FP64", "data": x[:, j].tolist()} for j, n in enumerate(m.features)
    ]}  # fmt: skip
    r = bc_server.post(f"/v2/models/{m.name}/versions/1/infer", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [3],
                               "data": m.pipeline.predict(m.test_x[:3]).tolist()}]  # fmt: skip
    assert "id" not in out


def test_multiclass_names_and_versions(iris_server: Server, models: dict[str, modelkit.ModelDir]) -> None:
    m = models["iris"]
    x = m.test_x.to_numpy()
    r = iris_server.post("/v2/models/flowers/versions/v7/infer",
                         json=matrix_request(x, outputs=[{"name": "predict_proba"}]))  # fmt: skip
    assert r.status_code == 200, r.text
    (proba,) = r.json()["outputs"]
    assert proba["shape"] == [len(x), 3]
    np.testing.assert_allclose(np.reshape(proba["data"], (-1, 3)), m.pipeline.predict_proba(x), rtol=1e-12)
    assert r.json()["model_version"] == "v7"
    r = iris_server.post("/v2/models/flowers/versions/v8/infer", json=matrix_request(x))
    assert r.status_code == 404
    assert "no version 'v8'" in r.json()["error"]


def test_regression_and_mixed_models(models: dict[str, modelkit.ModelDir]) -> None:
    reg, mixed = models["diabetes"], models["mixed"]
    s1 = Server(reg.path)
    s2 = Server(mixed.path)
    try:
        s1.wait_ready()
        s2.wait_ready()
        x = reg.test_x.to_numpy()
        r = s1.post(f"/v2/models/{reg.name}/infer", json=matrix_request(x))
        assert r.status_code == 200, r.text
        np.testing.assert_allclose(r.json()["outputs"][0]["data"], reg.pipeline.predict(reg.test_x), rtol=1e-9)
        assert r.json()["outputs"][0]["datatype"] == "FP64"
        samples = scrape(s1)
        assert sample(samples, "modelops_prediction_value_count") == len(x)
        assert sample(samples, "modelops_prediction_value_sum") == pytest.approx(reg.pipeline.predict(reg.test_x).sum())

        t = mixed.test_x.head(5).copy()
        t.loc[0, "colour"] = "mauve"  # never seen in training: __other__ in the metrics, ignored by the encoder
        body = {"inputs": [
            {"name": "colour", "shape": [5], "datatype": "BYTES", "data": t["colour"].tolist()},
            {"name": "x1", "shape": [5], "datatype": "FP64", "data": t["x1"].tolist()},
            {"name": "x2", "shape": [5], "datatype": "FP64", "data": t["x2"].tolist()},
        ], "outputs": [{"name": "predict"}, {"name": "predict_proba"}]}  # fmt: skip
        r = s2.post(f"/v2/models/{mixed.name}/infer", json=body)
        assert r.status_code == 200, r.text
        predict, proba = r.json()["outputs"]
        assert predict["datatype"] == "BYTES"
        assert predict["data"] == mixed.pipeline.predict(t).tolist()
        np.testing.assert_allclose(np.reshape(proba["data"], (5, 2)), mixed.pipeline.predict_proba(t), rtol=1e-12)
        samples = scrape(s2)
        counts = t["colour"].value_counts()
        for colour in ("red", "blue", "green"):
            assert sample(samples, "modelops_feature_category_total", feature="colour", category=colour) == counts.get(
                colour, 0
            )
        assert sample(samples, "modelops_feature_category_total", feature="colour", category="__other__") == 1
        for label in ("no", "yes"):
            assert sample(samples, "modelops_predictions_total", **{"class": label}) == predict["data"].count(label)
    finally:
        s1.close()
        s2.close()


# -- bad requests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b'{"inputs": [', "malformed JSON"),
        (json.dumps({"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP64", "data": [0] * 29}]}),
         "input 'x' has shape [1, 29]; expected [N, 30]"),
        (json.dumps({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "BYTES", "data": ["a"] * 30}]}),
         "input 'x', row 0, column 0 (feature 'mean radius'): the string 'a' is not a number"),
        (json.dumps({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [None] * 30}]}),
         "input 'x', row 0, column 0 (feature 'mean radius'): missing value; the model does not take missing "
         "values in 'mean radius'"),
        (json.dumps({"inputs": [{"name": "x", "shape": [1, 30], "datatype": "FP64", "data": [0] * 31}]}),
         "input 'x': 'data' has 31 values but shape [1, 30] needs 30"),
        (json.dumps({"inputs": [{"name": "mean radius", "shape": [1], "datatype": "FP64", "data": [1.0]},
                                {"name": "mean texture", "shape": [1], "datatype": "FP64", "data": [1.0]}]}),
         "missing input 'mean perimeter'"),
        (json.dumps({"inputs": [{"name": "mean radius", "shape": [1], "datatype": "FP64", "data": [1.0]},
                                {"name": "colour", "shape": [1], "datatype": "BYTES", "data": ["red"]}]}),
         "unknown input 'colour'"),
    ],
)  # fmt: skip
def test_bad_input_is_400_and_names_it(bc_server: Server, body: str | bytes, needle: str) -> None:
    r = bc_server.post("/v2/models/breast-cancer/infer", data=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert needle in r.json()["error"]


def test_routing_errors(bc_server: Server) -> None:
    r = bc_server.post("/v2/models/nope/infer", json={"inputs": []})
    assert r.status_code == 404
    assert r.json() == {"error": "unknown model 'nope'; this server serves 'breast-cancer'"}
    assert bc_server.get("/v2/models/nope").status_code == 404
    assert bc_server.get("/v2/nothing/here").status_code == 404
    r = bc_server.get("/v2/models/breast-cancer/infer")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"
    assert "use POST" in r.json()["error"]
    assert bc_server.session.delete(bc_server.url + "/v2/models/breast-cancer").status_code == 405
    assert bc_server.post("/v2/health/ready").status_code == 405


def test_body_over_the_limit_is_413(iris_server: Server) -> None:
    big = b'{"inputs": [' + b" " * 5000 + b"]}"
    r = iris_server.post("/v2/models/flowers/infer", data=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "over the limit of 4096 bytes" in r.json()["error"]
    # With Expect: 100-continue the body is never sent: 413 right away instead of 100 Continue.
    head = raw(iris_server, b"POST /v2/models/flowers/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                            b"Expect: 100-continue\r\n\r\n")  # fmt: skip
    assert head.startswith(b"HTTP/1.1 413 ")
    # A chunked body that grows over the limit.
    chunk = b"%x\r\n%s\r\n" % (3000, b" " * 3000)
    answer = raw(iris_server, b"POST /v2/models/flowers/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                 + chunk * 2 + b"0\r\n\r\n")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 413 ")


def test_expect_continue_chunked_and_pipelined(iris_server: Server, models: dict[str, modelkit.ModelDir]) -> None:
    x = models["iris"].test_x.to_numpy()[:2]
    body = json.dumps(matrix_request(x)).encode()
    with socket.create_connection(("127.0.0.1", iris_server.port), timeout=10) as s:
        s.sendall(b"POST /v2/models/flowers/infer HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                  b"Expect: 100-continue\r\n\r\n" % len(body))  # fmt: skip
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(body)
        assert s.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 10]), body[i : i + 10]) for i in range(0, len(body), 10))
    one = b"POST /v2/models/flowers/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked
    one += b"0\r\n\r\n"
    last = b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw(iris_server, one + one + last)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert answer.endswith(b'{"live":true}')


def test_malformed_http_and_binary_framing(iris_server: Server) -> None:
    assert raw(iris_server, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    answer = raw(iris_server, b"POST /v2/models/flowers/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                              b"Connection: close\r\nInference-Header-Content-Length: 9\r\n\r\n{}")  # fmt: skip
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Inference-Header-Content-Length is 9 but the body has only 2 bytes" in answer


def test_still_healthy_after_bad_requests(bc_server: Server, models: dict[str, modelkit.ModelDir]) -> None:
    for payload in (b"\x00\xff" * 100, b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"POST /v2 HTTP/1.1\r\n"):
        with socket.create_connection(("127.0.0.1", bc_server.port), timeout=5) as s:
            s.sendall(payload)
    assert bc_server.get("/v2/health/live").json() == {"live": True}
    assert bc_server.get("/v2/health/ready").json() == {"ready": True}
    m = models["breast_cancer"]
    r = bc_server.post(f"/v2/models/{m.name}/infer", json=matrix_request(m.test_x.to_numpy()[:1]))
    assert r.status_code == 200


# -- metrics ----------------------------------------------------------------------------------------


def test_metrics_after_known_requests(models: dict[str, modelkit.ModelDir]) -> None:
    m = models["iris"]
    server = Server(m.path, "--version", "3").wait_ready()
    try:
        x = m.test_x.to_numpy()
        for rows in (x[:1], x[1:11], x[11:]):
            assert server.post("/v2/models/iris/infer", json=matrix_request(rows)).status_code == 200
        assert server.post("/v2/models/iris/infer", data=b"nope").status_code == 400
        assert server.post("/v2/models/iris/infer", data=b"{}").status_code == 400
        assert server.get("/v2/models/other").status_code == 404
        assert server.get("/v2/models/iris/infer").status_code == 405
        server.get("/v2/health/ready")  # probes are not counted
        samples = scrape(server)
        ids = {"model": "iris", "version": "3"}
        assert sample(samples, "modelops_requests_total", code="200", **ids) == 3
        assert sample(samples, "modelops_requests_total", code="400", **ids) == 2
        assert sample(samples, "modelops_requests_total", code="404", **ids) == 1
        assert sample(samples, "modelops_requests_total", code="405", **ids) == 1
        assert sample(samples, "modelops_request_duration_seconds_count", **ids) == 7
        predicted = m.pipeline.predict(x)
        for c in m.classes or []:
            assert sample(samples, "modelops_predictions_total", **{"class": str(c)}, **ids) == (predicted == c).sum()
        for j, feature in enumerate(m.stats["features"]):
            edges = feature["edges"]
            buckets = sorted(
                ((float(ls["le"]), v) for (n, labels), v in samples.items()
                 if n == "modelops_feature_bucket" and (ls := dict(labels))["feature"] == feature["name"]),
            )  # fmt: skip
            assert [b for b, _ in buckets] == [*edges[1:-1], float("inf")]
            index = np.searchsorted(edges[1:-1], x[:, j], side="left")
            expected = np.cumsum(np.bincount(index, minlength=len(edges) - 1))
            assert [v for _, v in buckets] == expected.tolist()
            assert sample(samples, "modelops_feature_sum", feature=feature["name"]) == pytest.approx(x[:, j].sum())
    finally:
        server.close()


# -- start-up refusal and fetching -------------------------------------------------------------------


@pytest.mark.parametrize("workers", ["1", "2"])
def test_tampered_artifact_refused(models: dict[str, modelkit.ModelDir], tmp_path: Path, workers: str) -> None:
    d = tmp_path / "tampered"
    shutil.copytree(models["iris"].path, d)
    data = bytearray((d / "model.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "model.skops").write_bytes(bytes(data))
    server = Server(d, "--workers", workers)
    try:
        assert server.wait_exit() == 1
        lines = server.stderr.strip().splitlines()
        assert len(lines) == 1, server.stderr
        assert lines[0].startswith("modelops serve: artifact sha256 mismatch for ")
        assert f"expected {models['iris'].sha256}" in lines[0]
    finally:
        server.close()


def test_trusted_sha_flag_wins_over_result_json(models: dict[str, modelkit.ModelDir]) -> None:
    server = Server(models["iris"].path, "--sha256", "ab" * 32)
    try:
        assert server.wait_exit() == 1
        assert "sha256 mismatch" in server.stderr
        assert "expected " + "ab" * 32 in server.stderr
    finally:
        server.close()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_artifact_uri_file_and_http(models: dict[str, modelkit.ModelDir], tmp_path: Path) -> None:
    m = models["iris"]
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copyfile(m.path / "result.json", cache / "result.json")
    server = Server(cache, "--artifact-uri", f"file://{m.path / 'model.skops'}").wait_ready()
    server.close()
    assert (cache / "model.skops").read_bytes() == (m.path / "model.skops").read_bytes()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(m.path)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        empty = tmp_path / "fresh"  # result.json comes from beside the artifact too
        uri = f"http://127.0.0.1:{httpd.server_address[1]}/model.skops"
        server = Server(empty, "--artifact-uri", uri, "--sha256", m.sha256).wait_ready()
        try:
            r = server.post("/v2/models/iris/infer", json=matrix_request(m.test_x.to_numpy()[:4]))
            assert r.json()["outputs"][0]["data"] == m.pipeline.predict(m.test_x.to_numpy()[:4]).tolist()
        finally:
            server.close()
        bad = Server(tmp_path / "bad", "--artifact-uri", uri, "--sha256", "cd" * 32)
        assert bad.wait_exit() == 1
        assert "sha256 mismatch" in bad.stderr
        assert not (tmp_path / "bad" / "model.skops").exists()
        bad.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
