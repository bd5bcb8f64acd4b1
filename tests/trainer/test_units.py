"""The trainer's pure pieces: reference stats, signature, metrics, termination message,
S3 signing, config and estimator validation."""

from __future__ import annotations

import base64
import hashlib
import json
import random
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelops.logic import training
from modelops.train import estimators, metrics, output, refstats, s3, signature
from modelops.train.config import parse_config
from modelops.train.errors import ConfigError, TrainError


def bin_of(edges: list[float], x: float) -> int:
    """The contract's rule, written out: bin 0 x <= e1; bin i e_i < x <= e_i+1; last x > e_-2."""
    interior = edges[1:-1]
    for i, bound in enumerate(interior):
        if x <= bound:
            return i
    return len(interior)


def test_numeric_bins_follow_the_le_convention() -> None:
    values = np.arange(1, 101, dtype=float)
    stats = refstats.numeric_bins(values)
    assert len(stats["edges"]) == 11
    assert stats["edges"][0] == 1
    assert stats["edges"][-1] == 100
    assert sum(stats["counts"]) == 100
    expected = [0] * 10
    for x in values:
        expected[bin_of(stats["edges"], x)] += 1
    assert stats["counts"] == expected
    # Skewed data: duplicate quantiles are merged, NaN not counted.
    skewed = refstats.numeric_bins([0, 0, 0, 0, 0, 0, 0, 1, 2, np.nan])
    assert skewed["edges"] == sorted(set(skewed["edges"]))
    assert len(skewed["edges"]) < 11
    assert len(skewed["edges"]) == len(skewed["counts"]) + 1
    assert sum(skewed["counts"]) == 9
    # A constant column: x < 5, x == 5, x > 5 (strictly increasing edges, as the server requires).
    assert refstats.numeric_bins([5, 5, 5]) == {
        "edges": [float(np.nextafter(np.nextafter(5.0, 0), 0)), float(np.nextafter(5.0, 0)), 5,
                  float(np.nextafter(5.0, 6))],
        "counts": [0, 3, 0],
    }  # fmt: skip
    assert refstats.numeric_bins([np.nan, np.inf]) is None


def test_categorical_counts_top_and_other() -> None:
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 2 + [None]
    # Missing values are not counted (as for numeric features, and in modelops drift).
    assert refstats.categorical_counts(values, top=2) == {
        "categories": ["a", "b", "__other__"], "counts": [5, 5, 2],
    }
    many = [f"v{i:03d}" for i in range(60)] * 2 + ["v000"]
    stats = refstats.categorical_counts(many)
    assert len(stats["categories"]) == 51
    assert stats["categories"][0] == "v000"
    assert stats["counts"][-1] == 20
    assert sum(stats["counts"]) == len(many)
    assert refstats.categorical_counts([True, False, True]) == {
        "categories": ["True", "False", "__other__"], "counts": [2, 1, 0],
    }


def test_signature_datatypes() -> None:
    frame = pd.DataFrame({
        "f64": [1.0], "f32": np.array([1.0], dtype=np.float32), "i": [1], "u8": np.array([1], dtype=np.uint8),
        "b": [True], "s": ["x"], "cat": pd.Series(["x"], dtype="category"),
    })
    sig = refstats.signature(frame, "classification", np.array(["no", "yes"], dtype=object), None)
    assert [i["datatype"] for i in sig["inputs"]] == ["FP64", "FP32", "INT64", "INT64", "BOOL", "BYTES", "BYTES"]
    assert sig["outputs"] == [{"name": "predict", "datatype": "BYTES"}]
    assert sig["classes"] == ["no", "yes"]
    reg = refstats.signature(frame[["i"]], "regression", None, np.dtype("float64"))
    assert reg == {"inputs": [{"name": "i", "datatype": "INT64"}], "outputs": [{"name": "predict", "datatype": "FP64"}]}
    assert json.dumps(refstats.signature(frame[["i"]], "classification", np.array([0, 1]), None))


def test_classification_metrics_binary_and_multiclass() -> None:
    y = np.array([0, 0, 1, 1])
    binary = metrics.classification_metrics(y, np.array([0, 1, 1, 1]), [0, 1],
                                            proba=np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]]))
    # ece: four rows alone in their bins, |1 - 0.9|, |0 - 0.6|, |1 - 0.8|, |1 - 0.7| over 4
    assert binary == {"accuracy": 0.75, "precision": 2 / 3, "recall": 1.0, "f1": 0.8, "roc_auc": 1.0,
                      "ece": pytest.approx(0.3)}  # fmt: skip
    decision = metrics.classification_metrics(y, y, [0, 1], decision=np.array([-1.0, -2.0, 1.0, 3.0]))
    assert decision["roc_auc"] == 1.0
    y3 = np.array(["a", "b", "c", "c"])
    multi = metrics.classification_metrics(y3, np.array(["a", "b", "c", "a"]), ["a", "b", "c"])
    assert multi["accuracy"] == 0.75
    assert "roc_auc" not in multi
    assert multi["recall"] == pytest.approx((1 + 1 + 0.5) / 3)  # macro
    # A class missing from the test split: roc_auc is undefined and left out.
    missing = metrics.classification_metrics(np.array([0, 0]), np.array([0, 1]), [0, 1],
                                             proba=np.array([[0.9, 0.1], [0.4, 0.6]]))
    assert "roc_auc" not in missing


def test_regression_metrics() -> None:
    out = metrics.regression_metrics([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert out == {"rmse": pytest.approx((4 / 3) ** 0.5), "mae": pytest.approx(2 / 3), "r2": pytest.approx(-1.0)}
    assert set(metrics.regression_metrics([1.0], [2.0])) == {"rmse", "mae"}


def test_termination_message_compresses_before_dropping_anything() -> None:
    """Wide reference statistics compress well: the message keeps them, wrapped gzip+base64."""
    features = [
        {"name": f"feature_{i}", "kind": "numeric", "edges": [float(e) for e in range(11)], "counts": [100] * 10}
        for i in range(60)
    ]
    stats = {"sampleSize": 1000, "features": features}
    message: dict[str, Any] = {"ok": True, "model": "wide", "referenceStats": stats}
    assert len(output.dumps(message)) > 4096
    text = output.termination_message(message)
    assert len(text.encode()) <= 4096
    envelope = json.loads(text)
    assert envelope["ok"] is True
    assert envelope["encoding"] == "gzip+base64"
    assert training.decode_termination(text) == message  # nothing dropped, nothing marked truncated


def test_termination_message_drops_optional_fields_to_fit() -> None:
    """Even compressed it would not fit (random, incompressible text): optional fields go."""

    def noise(n: int) -> str:
        return base64.b64encode(random.Random(n).randbytes(n)).decode()[:n]

    message: dict[str, Any] = {
        "ok": True, "model": "m" * 100,
        "metrics": {f"metric_{i}": 0.123456789 for i in range(100)},
        "artifact": {"uri": "s3://bucket/" + noise(1500), "sha256": "a" * 64, "sizeBytes": 10},
        "dataset": {"uri": "https://example.com/" + noise(1501), "sha256": "b" * 64},
        "resultFile": "s3://bucket/result.json",
        "trial": {"index": 3, "params": {"p": noise(1002)}},
    }
    assert len(output.dumps(message)) > 4096
    text = output.termination_message(message)
    parsed = training.decode_termination(text)
    assert len(text.encode()) <= 4096
    assert parsed["truncated"] is True
    assert parsed["ok"] is True
    assert parsed["trial"] == {"index": 3}
    assert len(parsed["metrics"]) == 100  # compressible fields stay once the noisy ones are gone
    assert parsed["artifact"]["sha256"] == "a" * 64
    assert parsed["resultFile"] == "s3://bucket/result.json"
    small = {"ok": True, "trial": None}
    assert output.termination_message(small) == '{"ok":true,"trial":null}'
    error = json.loads(output.error_message("é" * 5000))
    assert error["ok"] is False
    assert len(output.error_message("é" * 5000).encode()) <= 4096
    assert error["error"].endswith("…")


def test_sign_v4_matches_the_aws_documentation_example() -> None:
    """AWS's S3 SigV4 example 'GET Object' (bytes 0-9 of examplebucket/test.txt)."""
    creds = s3.Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    headers = s3.sign_v4("GET", "https://examplebucket.s3.amazonaws.com/test.txt", {"Range": "bytes=0-9"},
                         creds, "us-east-1", "20130524T000000Z")
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_sign_v4_matches_botocore() -> None:
    auth_mod = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = s3.object_request("datasets", "tables/my table+1.csv", "http://127.0.0.1:9000", "eu-west-1").url
    assert url == "http://127.0.0.1:9000/datasets/tables/my%20table%2B1.csv"
    ours = s3.sign_v4("GET", url, {}, s3.Credentials("AK", "SK", "TOKEN"), "eu-west-1", "20240102T030405Z")
    request = AWSRequest(method="GET", url=url, headers={
        "x-amz-date": "20240102T030405Z", "x-amz-content-sha256": s3.EMPTY_SHA256, "X-Amz-Security-Token": "TOKEN",
    })
    request.context["timestamp"] = "20240102T030405Z"
    signer = auth_mod.S3SigV4Auth(Credentials("AK", "SK", "TOKEN"), "s3", "eu-west-1")
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    assert ours["Authorization"].endswith(f"Signature={signature}")
    assert "SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token," in ours["Authorization"]


def test_validate_estimator_spec_without_training() -> None:
    assert estimators.validate_estimator_spec("sklearn.svm.SVC", {"C": 2.0}) == "classification"
    assert estimators.validate_estimator_spec("sklearn.linear_model.Ridge", None, "regression") == "regression"
    with pytest.raises(ConfigError, match=r"estimator.params.gamma_: unknown parameter 'gamma_' for SVC"):
        estimators.validate_estimator_spec("sklearn.svm.SVC", {"gamma_": 1})
    with pytest.raises(ConfigError, match="must be a float in the range"):
        estimators.validate_estimator_spec("sklearn.svm.SVC", {"C": -1.0})
    with pytest.raises(ConfigError, match="does not match"):
        estimators.validate_estimator_spec("sklearn.svm.SVC", {}, "regression")
    with pytest.raises(ValueError, match="not in the allow-list"):
        estimators.validate_estimator_spec("subprocess.Popen")
    assert set(estimators.ALLOWED_ESTIMATORS.values()) == {"classification", "regression"}


def test_every_allowed_estimator_exists_and_matches_its_task() -> None:
    from sklearn.base import is_classifier, is_regressor

    for path, task in estimators.ALLOWED_ESTIMATORS.items():
        instance = estimators.load_class(path)()
        assert (is_classifier(instance) if task == "classification" else is_regressor(instance)), path


def test_parse_config_defaults_and_paths() -> None:
    config = parse_config({"dataset": {"uri": "sklearn://iris", "target": "target"},
                           "estimator": {"className": "sklearn.svm.SVC"}})
    assert (config.model, config.task, config.dataset.test_size, config.dataset.seed) == ("model", "classification",
                                                                                        0.2, 42)
    assert config.estimator.preprocessing.one_hot_categorical
    assert not config.estimator.preprocessing.scale_numeric
    bad: list[tuple[dict[str, Any], str]] = [
        ({"dataset": {"uri": "x", "target": "t", "features": ["t"]}},
         "config dataset.features: lists the target column 't'"),
        ({"dataset": {"uri": "x", "target": "t", "format": "xlsx"}},
         "config dataset.format: must be one of auto, csv, parquet, got 'xlsx'"),
        ({"dataset": {"uri": "x"}}, "config dataset.target: is required"),
        ({"dataset": {"uri": "x", "target": "t", "seed": -1}},
         "config dataset.seed: must be an integer in [0, 2**32), got -1"),
        ({"dataset": {"uri": "x", "target": "t"}, "sweep": {"parameters": {"a": []}}},
         "config sweep.parameters.a: must be a non-empty list"),
    ]
    for override, message in bad:
        raw = {"estimator": {"className": "sklearn.svm.SVC"}, **override}
        with pytest.raises(TrainError) as raised:
            parse_config(raw)
        assert str(raised.value) == message


def test_a_local_sweeps_trial_list_goes_first_when_the_message_must_shrink() -> None:
    from modelops.train import output

    message = {"ok": True, "resultSha256": "a" * 64, "referenceStats": {"features": [{"name": "x"}]},
               "sweep": {"trials": [{"index": i, "params": {"p": hashlib.sha256(str(i).encode()).hexdigest()}}
                                    for i in range(400)]}}  # fmt: skip
    text = output.termination_message(message)
    assert len(text.encode()) <= output.TERMINATION_LIMIT
    assert output.is_truncated(text)
    kept = json.loads(text)
    assert "sweep" not in kept
    assert kept["referenceStats"] == message["referenceStats"]
    assert kept["resultSha256"] == "a" * 64


# -- what the signature records for the model server (modelops.train.signature) -----------------------


def test_known_categories_keep_their_type_and_mark_gaps() -> None:
    assert signature.known_categories(pd.Series([3, 1, 2, 1])) == [1, 2, 3]
    assert signature.known_categories(pd.Series([0.5, None, 1.5])) == [0.5, 1.5, None]
    assert signature.known_categories(pd.Series(["b", "a", None], dtype=object)) == ["a", "b", None]
    assert signature.known_categories(pd.Series([True, False, None], dtype=object)) == [False, True, None]
    assert signature.known_categories(pd.Series(range(signature.MAX_CATEGORIES + 1))) is None
    assert signature.known_categories(pd.Series([b"raw", "text"], dtype=object)) is None


class _RefusesNaNIn:
    """A model that refuses NaN in some columns of a matrix, and counts the rows it was asked about."""

    def __init__(self, *columns: int) -> None:
        self.columns = list(columns)
        self.asked: list[int] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.asked.append(len(x))
        if np.isnan(x[:, self.columns]).any():
            raise ValueError("Input X contains NaN.")
        return np.zeros(len(x))


def test_columns_taking_asks_once_when_all_take_it() -> None:
    probes = np.array([[np.nan, 0, 0], [0, np.nan, 0], [0, 0, np.nan]])
    model = _RefusesNaNIn(1)
    assert signature.columns_taking(model, probes, ["a", "b", "c"]) == {"a", "c"}
    assert model.asked == [3, 1, 1, 1]
    model = _RefusesNaNIn()
    assert signature.columns_taking(model, probes, ["a", "b", "c"]) == {"a", "b", "c"}
    assert model.asked == [3]
    assert signature.columns_taking(_RefusesNaNIn(0), probes[:1], ["a"]) == set()
    frame = pd.DataFrame(probes, columns=["a", "b", "c"])
    assert signature.columns_taking(_FrameModel(_RefusesNaNIn(2)), frame, ["a", "b", "c"]) == {"a", "b"}


class _FrameModel:
    def __init__(self, inner: _RefusesNaNIn) -> None:
        self.inner = inner

    def predict(self, x: pd.DataFrame) -> np.ndarray:
        return self.inner.predict(x.to_numpy())


def test_annotate_asks_the_fitted_pipeline_column_by_column() -> None:
    """An imputer on one column (as a preprocessing step might add) makes that column, and only it, take gaps."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"a": [1.0, None, 3.0, 4.0] * 5, "b": [1, 2, 3, 4] * 5, "c": ["x", "y", "x", "y"] * 5})
    pipeline = Pipeline([
        ("pre", ColumnTransformer([("a", SimpleImputer(), ["a"]), ("b", "passthrough", ["b"]),
                                   ("c", OneHotEncoder(handle_unknown="ignore"), ["c"])])),
        ("model", LogisticRegression()),
    ]).fit(frame, [0, 1] * 10)  # fmt: skip
    types = (("a", "FP64"), ("b", "INT64"), ("c", "BYTES"))
    inputs: list[dict[str, Any]] = [{"name": n, "datatype": d} for n, d in types]
    signature.annotate(inputs, frame, ["c"], pipeline)
    assert inputs == [
        {"name": "a", "datatype": "FP64", "acceptsMissing": True},
        {"name": "b", "datatype": "INT64", "acceptsMissing": False},
        {"name": "c", "datatype": "BYTES", "categorical": True, "categories": ["x", "y"], "acceptsMissing": True},
    ]


def test_the_skops_artifact_is_canonical_and_loads_as_the_model() -> None:
    """Two copies of one model (other ids, other clock) give the same bytes, which load as the model."""
    import copy
    import io
    import zipfile

    import skops.io
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_iris(return_X_y=True)
    model = Pipeline([("scale", StandardScaler()), ("rf", RandomForestClassifier(n_estimators=5, random_state=0))])
    model.fit(x, y)
    twin = copy.deepcopy(model)
    raw_a, raw_b = skops.io.dumps(model), skops.io.dumps(twin)
    assert raw_a != raw_b  # skops names arrays after id(): the reason for the canonical form
    assert output.model_bytes(model) == output.model_bytes(twin)
    data = output.model_bytes(model)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        assert names[0] == "schema.json"
        assert names[1:] == [f"{i}.npy" for i in range(1, len(names))]
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    loaded = skops.io.loads(data, trusted=skops.io.get_untrusted_types(data=data))
    np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))
    assert output.canonical_skops(data) == data


def test_a_skops_archive_missing_a_data_file_is_not_canonicalised() -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps({"__loader__": "NdArrayNode", "file": "123.npy", "protocol": 2}))
    with pytest.raises(ValueError, match="names data files it does not hold"):
        output.canonical_skops(out.getvalue())
