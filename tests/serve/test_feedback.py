"""Feedback on real ``modelops serve`` processes: ids in every answer, labels counted on any replica, after restarts.

Labels are chosen by the tests (random classes, or the model's own prediction plus noise for a
regressor), so every counter has an exact expected value: scikit-learn's ``confusion_matrix`` on the
same rows, and numpy's sums of the errors. Replicas are separate server processes sharing one keys
directory, as the pods of a ModelDeployment share the namespace's Secret.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families
from sklearn.metrics import confusion_matrix

from modelops.serve import tokens
from serve import modelkit
from serve.conftest import Server
from serve.test_feedback_parts import kubelet_write, one_key_dir

pytestmark = pytest.mark.slow  # feedback across several real servers, restarts and key rotations

Models = dict[str, modelkit.ModelDir]


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return one_key_dir(tmp_path / "keys")


def feedback_server(model: modelkit.ModelDir, keys: Path, *extra: str) -> Server:
    return Server(model.path, "--feedback-keys", str(keys), "--feedback-scope", "ml/test", *extra).wait_ready()


def matrix_body(x: np.ndarray, **extra: Any) -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP64", "data": x.ravel().tolist()}], **extra}


def infer_rows(server: Server, model: modelkit.ModelDir, x: np.ndarray) -> tuple[str, list[Any]]:
    """(the request's id, its predictions) of one request of these rows."""
    r = server.post(f"/v2/models/{model.name}/infer", json=matrix_body(x))
    assert r.status_code == 200, r.text
    doc = r.json()
    return doc["id"], doc["outputs"][0]["data"]


def metrics(server: Server) -> dict[tuple[Any, ...], float]:
    """Every sample of /metrics by (name, sorted labels)."""
    out = {}
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for s in family.samples:
            out[(s.name, *sorted(s.labels.items()))] = s.value
    return out


def confusion_counters(server: Server, model: str, version: str, classes: list[str]) -> np.ndarray:
    got = metrics(server)
    n = len(classes)
    out = np.zeros((n, n))
    for i, p in enumerate(classes):
        for j, a in enumerate(classes):
            key = ("modelops_feedback_confusion_total", ("actual", a), ("model", model), ("predicted", p),
                   ("version", version))  # fmt: skip
            out[i, j] = got[key]
    return out


def send(server: Server, model: str, items: Any) -> requests.Response:
    return server.post(f"/v2/models/{model}/feedback", json=items)


def test_every_answer_carries_an_id_and_labels_make_the_confusion_matrix(models: Models, keys_dir: Path) -> None:
    m = models["breast_cancer"]
    server = feedback_server(m, keys_dir)
    try:
        x = m.test_x.to_numpy(dtype=np.float64)
        rng = np.random.default_rng(3)
        actual = rng.integers(0, 2, len(x))
        meta = server.get(f"/v2/models/{m.name}").json()
        assert meta["parameters"] == {"feedback": True}

        # rows one by one (the single-row path), half of them with an id of the client's own
        items = []
        for i in range(0, 40):
            body = matrix_body(x[i : i + 1], **({"id": f"req-{i}"} if i % 2 else {}))
            doc = server.post(f"/v2/models/{m.name}/infer", json=body).json()
            if i % 2:
                assert doc["id"] == f"req-{i}"
                fid = doc["parameters"]["feedback_id"]
            else:
                assert "parameters" not in doc
                fid = doc["id"]
            items.append({"id": fid, "actual": int(actual[i])})
        # one JSON batch, labelled row by row and as a list
        batch_id, _ = infer_rows(server, m, x[40:70])
        items += [{"id": batch_id, "row": r, "actual": int(actual[40 + r])} for r in range(0, 15)]
        items.append({"id": batch_id, "actual": [None] * 15 + [int(a) for a in actual[55:70]]})
        # tritonclient with its defaults: binary tensors in and out; the id is in the JSON header
        client = triton.InferenceServerClient(url=f"127.0.0.1:{server.port}")
        try:
            tensor = triton.InferInput("x", [len(x) - 70, x.shape[1]], "FP64")
            tensor.set_data_from_numpy(x[70:])
            result = client.infer(m.name, [tensor])
            assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 8 * (len(x) - 70)
            triton_id = result.get_response()["id"]
        finally:
            client.close()
        items.append({"id": triton_id, "actual": [int(a) for a in actual[70:]]})

        r = send(server, m.name, items)
        assert r.status_code == 200, r.text
        assert r.json() == {"counted": len(x), "duplicates": [], "refused": []}
        predicted = m.pipeline.predict(m.test_x)
        expected = confusion_matrix(actual, predicted, labels=[0, 1]).T  # ours: rows are predicted
        np.testing.assert_array_equal(confusion_counters(server, m.name, "1", ["0", "1"]), expected)
        got = metrics(server)
        assert got[("modelops_feedback_labels_total", ("model", m.name), ("version", "1"))] == len(x)
        counted = ("modelops_feedback_items_total", ("model", m.name), ("result", "counted"), ("version", "1"))
        assert got[counted] == len(x)
        # feedback is not inference: the canary's error rate and latency do not see it (metadata, 40 rows, 2 batches)
        assert got[("modelops_requests_total", ("code", "200"), ("model", m.name), ("version", "1"))] == 1 + 40 + 2
    finally:
        server.close()


def test_a_label_counts_on_another_replica_of_another_version_and_after_a_restart(
    models: Models, keys_dir: Path
) -> None:
    m = models["mixed"]  # string classes: "no", "yes"
    x = m.test_x
    first = Server(m.path, "--feedback-keys", str(keys_dir), "--feedback-scope", "ml/test", "--version", "v1")
    second = Server(m.path, "--feedback-keys", str(keys_dir), "--feedback-scope", "ml/test", "--version", "v2")
    try:
        first.wait_ready()
        second.wait_ready()
        body = {"inputs": [{"name": c, "shape": [len(x)], "datatype": "BYTES" if c == "colour" else "FP64",
                            "data": x[c].tolist()} for c in x.columns]}  # fmt: skip
        doc = first.post(f"/v2/models/{m.name}/infer", json=body).json()
        predicted = doc["outputs"][0]["data"]
        assert predicted == m.pipeline.predict(x).tolist()
        actual = ["yes" if i % 3 == 0 else "no" for i in range(len(x))]
        # The label arrives at the other replica, which serves v2: it is counted for v1, the version that predicted.
        r = send(second, m.name, {"id": doc["id"], "actual": actual})
        assert r.json()["counted"] == len(x), r.text
        expected = confusion_matrix(actual, predicted, labels=["no", "yes"]).T
        np.testing.assert_array_equal(confusion_counters(second, m.name, "v1", ["no", "yes"]), expected)
        assert not confusion_counters(second, m.name, "v2", ["no", "yes"]).any()  # its own version: zeros, present

        # Restarts keep nothing per request, and need nothing: an id issued before is still good after.
        one_row = {"inputs": [{"name": c, "shape": [1], "datatype": "BYTES" if c == "colour" else "FP64",
                               "data": x[c].tolist()[:1]} for c in x.columns]}  # fmt: skip
        early = first.post(f"/v2/models/{m.name}/infer", json=one_row).json()["id"]
        counted_before = second.post(f"/v2/models/{m.name}/infer", json=one_row).json()["id"]
        assert send(second, m.name, {"id": counted_before, "actual": "no"}).json()["counted"] == 1
        assert first.terminate() == 0
        assert second.terminate() == 0
        second = Server(m.path, "--feedback-keys", str(keys_dir), "--feedback-scope", "ml/test", "--version", "v2")
        second.wait_ready()
        r = send(second, m.name, {"id": early, "actual": "yes"})
        assert r.status_code == 200, r.text
        assert r.json()["counted"] == 1
        # ... and the restarted pod has forgotten what it counted: a repeat counts again there (docs/quality.md)
        assert send(second, m.name, {"id": counted_before, "actual": "no"}).json()["counted"] == 1
        assert send(second, m.name, {"id": counted_before, "actual": "no"}).json()["duplicates"] == [{"item": 0}]
    finally:
        first.close()
        second.close()


def test_forged_expired_unknown_and_malformed_labels_are_refused_by_name(
    models: Models, keys_dir: Path, tmp_path: Path
) -> None:
    m = models["iris"]
    x = m.test_x.to_numpy(dtype=np.float64)
    other_keys = tmp_path / "other-keys"
    other_keys.mkdir()
    (other_keys / "key-1").write_bytes(os.urandom(32))
    server = feedback_server(m, keys_dir, "--feedback-ttl", "2")
    other_scope = Server(m.path, "--feedback-keys", str(keys_dir), "--feedback-scope", "ml/other").wait_ready()
    other_key = feedback_server(m, other_keys)
    try:
        good, _ = infer_rows(server, m, x[:1])
        batch, _ = infer_rows(server, m, x[:3])
        tampered = good[:30] + ("A" if good[30] != "A" else "B") + good[31:]
        foreign_scope, _ = infer_rows(other_scope, m, x[:1])
        foreign_key, _ = infer_rows(other_key, m, x[:1])
        items = [
            {"id": good, "actual": 1},  # 0 counted
            {"id": tampered, "actual": 1},  # 1 forged
            {"id": foreign_scope, "actual": 1},  # 2 forged: another deployment's, same keys
            {"id": foreign_key, "actual": 1},  # 3 forged: another namespace's keys
            {"id": good, "actual": 7},  # 4 not a class of iris
            {"id": good, "actual": [1, 2]},  # 5 the id covers one row
            {"id": batch, "actual": 0},  # 6 no row for a batch
            {"id": batch, "row": 3, "actual": 0},  # 7 no such row
            {"id": "not-an-id", "actual": 0},  # 8
            {"actual": 0},  # 9
            "label",  # 10
            {"id": batch, "row": 2, "actual": {"class": 1}},  # 11
            {"id": good, "actual": 1},  # 12 a repeat
        ]
        r = send(server, m.name, items)
        assert r.status_code == 207, r.text
        answer = r.json()
        assert answer["counted"] == 1
        assert answer["duplicates"] == [{"item": 12}]
        refused = {e["item"]: (e["status"], e["result"], e["error"]) for e in answer["refused"]}
        assert {i: s[:2] for i, s in refused.items()} == {
            1: (403, "forged"), 2: (403, "forged"), 3: (403, "forged"), 4: (422, "unknown_class"),
            5: (400, "malformed"), 6: (400, "malformed"), 7: (400, "malformed"), 8: (400, "malformed"),
            9: (400, "malformed"), 10: (400, "malformed"), 11: (422, "bad_actual"),
        }  # fmt: skip
        assert refused[4][2] == "item 4: 7 is not a class of the version that predicted ('0', '1', '2')"
        assert refused[7][2].startswith("item 7: 'row' must be an integer from 0 to 2")
        for i, (_, _, error) in refused.items():
            assert error.startswith(f"item {i}: ")
        # nothing counted at all: the first refusal's status, and its message on top
        r = send(server, m.name, [{"id": tampered, "actual": 1}, {"id": good, "actual": 9}])
        assert r.status_code == 403
        assert r.json()["error"].startswith("item 0: its signature does not match")
        assert send(server, m.name, {"id": good, "actual": 9}).status_code == 422
        for body, needle in ((b"{", "malformed JSON"), (b"[]", "non-empty array"), (b'"x"', "non-empty array")):
            r = server.post(f"/v2/models/{m.name}/feedback", data=body)
            assert r.status_code == 400
            assert needle in r.json()["error"]
        assert server.get(f"/v2/models/{m.name}/feedback").status_code == 405

        # Expiry: the server was told ids live 2 s. Wait until this id is certainly older, then it is refused.
        fresh, _ = infer_rows(server, m, x[:1])
        issued = time.time()
        while time.time() < issued + 3.5:
            time.sleep(0.2)
        r = send(server, m.name, {"id": fresh, "actual": 0})
        assert r.status_code == 410, r.text
        assert "ids are accepted for 2 s" in r.json()["error"]
        got = metrics(server)
        results = {k[2][1]: v for k, v in got.items() if k[0] == "modelops_feedback_items_total"}
        assert results["forged"] == 4
        assert results["expired"] == 1
        assert results["duplicate"] == 1
    finally:
        for s in (server, other_scope, other_key):
            s.close()


def test_a_repeat_counts_once_while_the_pod_remembers_and_memory_is_bounded(models: Models, keys_dir: Path) -> None:
    m = models["iris"]
    x = m.test_x.to_numpy(dtype=np.float64)
    server = feedback_server(m, keys_dir, "--feedback-dedup-entries", "8")  # one bucket of eight
    try:
        ids = [infer_rows(server, m, x[i : i + 1])[0] for i in range(9)]
        assert send(server, m.name, {"id": ids[0], "actual": 0}).json()["counted"] == 1
        assert send(server, m.name, {"id": ids[0], "actual": 0}).json()["duplicates"] == [{"item": 0}]
        assert send(server, m.name, [{"id": i, "actual": 0} for i in ids[1:]]).json()["counted"] == 8
        # nine distinct labels in eight entries: the oldest was forgotten, and a repeat of it counts again
        assert send(server, m.name, {"id": ids[0], "actual": 0}).json()["counted"] == 1
        got = metrics(server)
        assert got[("modelops_feedback_dedup_forgotten_total", ("model", m.name), ("version", "1"))] >= 1
        assert got[("modelops_feedback_labels_total", ("model", m.name), ("version", "1"))] == 10
    finally:
        server.close()


def fresh_connection_post(port: int, path: str, body: bytes) -> int:
    """One request on its own connection (so that the kernel may hand it to any worker)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
        sock.sendall(head.encode() + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1])


def test_several_workers_count_each_label_once_and_sum_their_counters(models: Models, keys_dir: Path) -> None:
    m = models["diabetes"]
    x = m.test_x.to_numpy(dtype=np.float64)
    server = feedback_server(m, keys_dir, "--workers", "3")
    try:
        rng = np.random.default_rng(5)
        predicted, actual, ids = [], [], []
        for i in range(60):
            fid, pred = infer_rows(server, m, x[i : i + 1])
            ids.append(fid)
            predicted.append(pred[0])
            actual.append(float(pred[0] + rng.normal(0, 30)))
        path = f"/v2/models/{m.name}/feedback"
        for fid, a in zip(ids, actual, strict=True):
            for _ in range(3):  # each label three times, each time on a new connection
                assert fresh_connection_post(server.port, path, orjson_dumps({"id": fid, "actual": a})) == 200
        errors = np.array(predicted) - np.array(actual)
        deadline = time.monotonic() + 30  # another worker's counts are flushed within about a second

        def counters() -> dict[str, float]:
            got = metrics(server)
            key = (("model", m.name), ("version", "1"))
            names = ("labels", "absolute_error", "squared_error", "overestimate", "underestimate")
            out = {name: got.get((f"modelops_feedback_{name}_total", *key), -1.0) for name in names}
            out["duplicates"] = got[("modelops_feedback_items_total", key[0], ("result", "duplicate"), key[1])]
            return out

        while counters()["duplicates"] != 120 and time.monotonic() < deadline:
            time.sleep(0.2)
        got = counters()
        assert got["labels"] == 60
        assert got["duplicates"] == 120
        assert got["absolute_error"] == pytest.approx(np.abs(errors).sum(), rel=1e-12)
        assert got["squared_error"] == pytest.approx((errors**2).sum(), rel=1e-12)
        assert got["overestimate"] == pytest.approx(errors[errors > 0].sum(), rel=1e-12)
        assert got["underestimate"] == pytest.approx(-errors[errors < 0].sum(), rel=1e-12)
    finally:
        server.close()


def orjson_dumps(doc: Any) -> bytes:
    import orjson

    return orjson.dumps(doc)


def test_rotated_keys_are_picked_up_and_an_id_lives_while_its_key_is_held(models: Models, tmp_path: Path) -> None:
    m = models["iris"]
    x = m.test_x.to_numpy(dtype=np.float64)
    directory = tmp_path / "secret"
    directory.mkdir()
    k1, k2, k3 = (os.urandom(32) for _ in range(3))
    kubelet_write(directory, {"key-1": k1, "key-2": k2, "current": b"1"}, 1)
    a = feedback_server(m, directory)
    b = feedback_server(m, directory)
    try:
        before, _ = infer_rows(a, m, x[:1])
        assert tokens.read(before).key_id == 1
        kubelet_write(directory, {"key-1": k1, "key-2": k2, "key-3": k3, "current": b"2"}, 2)

        def signing_with_two() -> str | None:
            fid, _ = infer_rows(a, m, x[:1])
            return fid if tokens.read(fid).key_id == 2 else None

        deadline = time.monotonic() + 30
        after = signing_with_two()
        while after is None and time.monotonic() < deadline:
            time.sleep(0.2)
            after = signing_with_two()
        assert after is not None, "the server did not pick up the rotated key"
        # b may not have re-read its copy yet, or may have: it holds key 2 either way (it was "next")
        r = send(b, m.name, [{"id": before, "actual": 0}, {"id": after, "actual": 0}])
        assert r.json()["counted"] == 2, r.text
        # key 1 rotated out: ids signed with it are refused, once the server has re-read the directory
        kubelet_write(directory, {"key-2": k2, "key-3": k3, "current": b"2"}, 3)
        fresh, _ = infer_rows(a, m, x[1:2])
        deadline = time.monotonic() + 30
        while send(b, m.name, {"id": before, "actual": 1}).status_code != 403 and time.monotonic() < deadline:
            time.sleep(0.2)
        r = send(b, m.name, {"id": before, "actual": 1})
        assert r.status_code == 403, r.text
        assert "does not hold" in r.json()["error"]
        assert send(b, m.name, {"id": fresh, "actual": 1}).json()["counted"] == 1
    finally:
        a.close()
        b.close()


def test_without_keys_there_are_no_ids_and_no_route(bc_server: Server, models: Models) -> None:
    m = models["breast_cancer"]
    x = m.test_x.to_numpy(dtype=np.float64)
    doc = bc_server.post(f"/v2/models/{m.name}/infer", json=matrix_body(x[:1])).json()
    assert "id" not in doc
    assert "parameters" not in doc
    assert "parameters" not in bc_server.get(f"/v2/models/{m.name}").json()
    r = bc_server.post(f"/v2/models/{m.name}/feedback", json={"id": "x", "actual": 1})
    assert r.status_code == 404
    assert "--feedback-keys" in r.json()["error"]
    assert "modelops_feedback" not in bc_server.get("/metrics").text


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        ("missing", "cannot read the feedback keys directory"),
        ("empty", "no feedback key in"),
        ("short", "has 4 bytes; a key has at least 32"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_keys_directory_without_a_key_stops_the_server(
    models: Models, tmp_path: Path, setup: str, needle: str, workers: str
) -> None:
    directory = tmp_path / "keys"
    if setup != "missing":
        directory.mkdir()
    if setup == "short":
        (directory / "key-1").write_bytes(b"abcd")
    server = Server(models["iris"].path, "--feedback-keys", str(directory), "--workers", workers)
    try:
        assert server.wait_exit(60) == 1
        lines = server.stderr.strip().splitlines()
        assert len(lines) == 1, server.stderr
        assert needle in lines[0]
    finally:
        server.close()


def expected_confusion(proba: np.ndarray, predicted_index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, n))
    for row, k in zip(proba, predicted_index, strict=True):
        out[k] += row
    return out


@pytest.mark.parametrize("model", ["iris", "iris_tree", "mixed"])
def test_the_expected_confusion_matrix_is_the_sum_of_predict_proba_rows(
    models: Models, model: str, request: pytest.FixtureRequest
) -> None:
    m = models[model]
    server = Server(m.path).wait_ready()
    try:
        x = m.test_x
        if model == "mixed":
            body = {"inputs": [{"name": c, "shape": [len(x)], "datatype": "BYTES" if c == "colour" else "FP64",
                                "data": x[c].tolist()} for c in x.columns]}  # fmt: skip
            assert server.post(f"/v2/models/{m.name}/infer", json=body).status_code == 200
        else:
            values = x.to_numpy(dtype=np.float64)
            assert server.post(f"/v2/models/{m.name}/infer", json=matrix_body(values[:20])).status_code == 200
            for i in range(20, len(values)):  # one by one: the single-row path where there is one
                r = server.post(f"/v2/models/{m.name}/infer", json=matrix_body(values[i : i + 1]))
                assert r.status_code == 200
        frame = x if model in ("mixed", "iris_tree") else x.to_numpy(dtype=np.float64)
        proba = m.pipeline.predict_proba(frame)
        classes = list(m.pipeline.classes_)
        index = np.array([classes.index(p) for p in m.pipeline.predict(frame)])
        expected = expected_confusion(proba, index, len(classes))
        got = metrics(server)
        labels = [str(c) for c in classes]
        for i, p in enumerate(labels):
            for j, a in enumerate(labels):
                key = ("modelops_expected_confusion_total", ("actual", a), ("model", m.name), ("predicted", p),
                       ("version", "1"))  # fmt: skip
                assert got[key] == pytest.approx(expected[i, j], rel=1e-9, abs=1e-12)
            correct = got[("modelops_expected_correct_total", ("class", p), ("model", m.name), ("version", "1"))]
            assert correct == pytest.approx(expected[i, i], rel=1e-9, abs=1e-12)
            column = got[("modelops_expected_actual_total", ("class", p), ("model", m.name), ("version", "1"))]
            assert column == pytest.approx(expected[:, i].sum(), rel=1e-9, abs=1e-12)
            # the row sums are the predictions counted by class
            predictions = got[("modelops_predictions_total", ("class", p), ("model", m.name), ("version", "1"))]
            assert predictions == pytest.approx(expected[i].sum(), rel=1e-9)
    finally:
        server.close()
