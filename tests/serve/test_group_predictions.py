"""Predictions counted by the group of each sensitive input (``modelops_group_predictions_total``, docs/fairness.md).

The groups come from the version's fairness record in ``result.json``; the counts of a real
``modelops serve`` are compared with the groups and predictions computed apart, with pandas, on
the same rows, through the batch path and the single-row path.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelops.serve import contract, metrics
from serve import modelkit
from serve.conftest import Server


def _record(*features: dict[str, Any]) -> dict[str, Any]:
    return {"library": "fairlearn", "rows": 100, "minGroupSize": 30, "features": list(features)}


def _feature(name: str, kind: str, groups: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "usedAsInput": True, "metrics": {},
            "groups": [{"group": g, "count": 50, "insufficient": False} for g in groups], **extra}  # fmt: skip


def _with_fairness(model: modelkit.ModelDir, path: Path, record: dict[str, Any]) -> Path:
    shutil.copytree(model.path, path)
    result = json.loads((path / "result.json").read_text())
    result["fairness"] = record
    (path / "result.json").write_text(json.dumps(result))
    return path


def _groups_counted(server: Server, feature: str) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for s in family.samples:
            if s.name == "modelops_group_predictions_total" and s.labels["feature"] == feature:
                out[(s.labels["group"], s.labels["class"])] += int(s.value)
    return +out


def test_contract_keeps_the_inputs_groups_only() -> None:
    record = _record(
        _feature("sex", "categorical", ["F", "M"], usedAsInput=False),
        _feature("colour", "categorical", ["blue", "red"]),
        _feature("x2", "binned", ["<5", ">=5", "(missing)"], bins=[5]),
        _feature("x1", "binned", ["young", "mid", "old"], bins=[-1, 1]),
        _feature("x1b", "binned", ["young", "old"], bins=[-1, 1]),  # custom labels, one absent: cannot be placed
        _feature("colour&x2", "intersection", ["red&<5"], of=["colour", "x2"]),
    )
    sensitive = contract._parse_sensitive(record, {"colour", "x1", "x2", "x1b"})
    assert [s.name for s in sensitive] == ["colour", "x2", "x1"]
    assert sensitive[1].bin_names == ("<5", ">=5")
    assert sensitive[2].bin_names == ("young", "mid", "old")
    # A record that keeps every interval's label places them all, the absent one too.
    kept = contract._parse_sensitive(
        _record(_feature("x1b", "binned", ["young", "old"], bins=[-1, 1], binLabels=["young", "mid", "old"])), {"x1b"}
    )
    assert kept[0].bin_names == ("young", "mid", "old")
    assert kept[0].groups == ("young", "mid", "old")  # a row in the middle interval counts as "mid", not __other__
    with pytest.raises(contract.ContractError, match=r"fairness.features\[0\].binLabels"):
        contract._parse_sensitive(_record(_feature("x1", "binned", ["<1"], bins=[1], binLabels=["<1"])), {"x1"})
    with pytest.raises(contract.ContractError, match=r"fairness.features\[0\].bins"):
        contract._parse_sensitive(_record(_feature("x1", "binned", ["<1"], bins=["a"])), {"x1"})


def test_group_of_follows_the_trainers_convention() -> None:
    """A cut point belongs to the interval above it; missing is (missing) where recorded, else __other__."""
    lay = metrics.build_layout(
        model="m", version="v", classes=["0", "1"],
        sensitive=[(contract.SensitiveGroups("age", ("<30", "[30, 50)", ">=50"), (30.0, 50.0),
                                             contract.default_bin_names([30, 50])), True, 0),
                   (contract.SensitiveGroups("n", ("1", "2", "(missing)")), True, 1)],
    )  # fmt: skip
    age, n = lay.sensitive
    assert [age.groups[metrics.group_of(age, v)] for v in (29.99, 30.0, 49.0, 50.0, float("nan"))] == [
        "<30", "[30, 50)", "[30, 50)", ">=50", "__other__"
    ]
    assert [n.groups[metrics.group_of(n, v)] for v in (1.0, 2, 3.0, None, float("nan"))] == [
        "1", "2", "__other__", "(missing)", "(missing)"
    ]
    values = np.zeros(lay.size)
    x = np.array([[20.0, 1.0], [30.0, 5.0], [60.0, 2.0]])
    metrics.observe_groups(lay, values, x, [], np.array([1, 0, 1], dtype=np.intp))
    recorder = metrics.Recorder(lay, values)
    recorder.groups([55.0, 1.0], 0)
    recorder.flush()
    got = {(s.labels["feature"], s.labels["group"], s.labels["class"]): s.value
           for f in metrics.families(lay, values) if f.name == "modelops_group_predictions"
           for s in f.samples if s.value}  # fmt: skip
    assert got == {("age", "<30", "1"): 1, ("age", "[30, 50)", "0"): 1, ("age", ">=50", "1"): 1,
                   ("age", ">=50", "0"): 1, ("n", "1", "1"): 1, ("n", "__other__", "0"): 1,
                   ("n", "2", "1"): 1, ("n", "1", "0"): 1}  # fmt: skip


def test_a_regression_counts_rows_by_group_alone() -> None:
    lay = metrics.build_layout(
        model="m", version="v", classes=None, sensitive=[(contract.SensitiveGroups("g", ("a",)), False, 0)]
    )
    (slot,) = lay.sensitive
    assert (slot.groups, lay.group_width) == (("a", "__other__"), 1)
    values = np.zeros(lay.size)
    found = metrics.observe_groups(lay, values, np.zeros((3, 0)), [["a", "b", "a"]], np.zeros(3, dtype=np.intp))
    assert found[0].tolist() == [0, 1, 0]
    assert values[slot.offset : slot.offset + 2].tolist() == [2.0, 1.0]
    family = metrics._group_family(lay, values, ["model", "version"], ["m", "v"])
    assert [(s.labels, s.value) for s in family.samples] == [
        ({"model": "m", "version": "v", "feature": "g", "group": "a"}, 2.0),
        ({"model": "m", "version": "v", "feature": "g", "group": "__other__"}, 1.0),
    ]


@pytest.fixture(scope="module")
def mixed_server(models: dict[str, modelkit.ModelDir], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    record = _record(
        _feature("colour", "categorical", ["blue", "red"]),  # green is not a group: __other__
        _feature("x2", "binned", ["<4", "[4, 6)", ">=6"], bins=[4, 6]),
        _feature("sex", "categorical", ["F", "M"], usedAsInput=False),
    )
    path = _with_fairness(models["mixed"], tmp_path_factory.mktemp("fair") / "mixed", record)
    server = Server(path).wait_ready()
    yield server
    server.close()


def test_a_served_batch_is_counted_by_group_and_class(
    mixed_server: Server, models: dict[str, modelkit.ModelDir]
) -> None:
    model = models["mixed"]
    t = model.test_x.copy()
    t.loc[0, "colour"] = "mauve"
    t.loc[1, "x2"] = 6.0  # a cut point: the interval above
    r = mixed_server.post(f"/v2/models/{model.name}/infer", json=modelkit.frame_body(t, model.categorical))
    assert r.status_code == 200, r.text
    predicted = model.pipeline.predict(t)
    colour = t["colour"].where(t["colour"].isin(["blue", "red"]), "__other__")
    x2 = pd.cut(t["x2"], [-np.inf, 4, 6, np.inf], right=False, labels=["<4", "[4, 6)", ">=6"]).astype(str)
    assert _groups_counted(mixed_server, "colour") == Counter(zip(colour, predicted, strict=True))
    assert _groups_counted(mixed_server, "x2") == Counter(zip(x2, predicted, strict=True))
    assert _groups_counted(mixed_server, "sex") == Counter()  # not an input: never in a request


def test_single_rows_are_counted_by_group(models: dict[str, modelkit.ModelDir], tmp_path: Path) -> None:
    """An all-numeric model's one-row requests take the server's row path: counted the same way."""
    model = models["breast_cancer"]
    record = _record(_feature("mean radius", "binned", ["<12", "[12, 15)", ">=15"], bins=[12, 15]))
    server = Server(_with_fairness(model, tmp_path / "bc", record)).wait_ready()
    try:
        x = model.test_x.head(40)
        for row in x.to_numpy():
            body = {"inputs": [{"name": "x", "shape": [1, x.shape[1]], "datatype": "FP64", "data": row.tolist()}]}
            r = server.post(f"/v2/models/{model.name}/infer", json=body)
            assert r.status_code == 200, r.text
        predicted = [str(p) for p in model.pipeline.predict(x)]
        groups = pd.cut(x["mean radius"], [-np.inf, 12, 15, np.inf], right=False,
                        labels=["<12", "[12, 15)", ">=15"]).astype(str)  # fmt: skip
        assert _groups_counted(server, "mean radius") == Counter(zip(groups, predicted, strict=True))
    finally:
        server.close()
