"""Unit tests of the metric maths (``modelops.serve.metrics``): bin convention, layout, sums, exposition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelops.serve import metrics
from serve import modelkit


def layout(**kw: object) -> metrics.Layout:
    args: dict[str, object] = {
        "model": "m", "version": "v1", "classes": ["0", "1"],
        "numeric": [("a", 0, [1.0, 2.0, 3.0]), ("b", 2, [10.0])],
        "categorical": [("colour", 0, ["red", "blue", "__other__"])],
    }  # fmt: skip
    args.update(kw)
    return metrics.build_layout(**args)  # type: ignore[arg-type]


def test_bins_follow_the_contract_convention() -> None:
    lay = layout()
    # a: bins (-inf,1], (1,2], (2,3], (3,inf); b: (-inf,10], (10,inf)
    x = np.array([[1.0, 99, 10.0], [1.0000001, 99, 10.5], [3.0, 99, -5], [3.5, 99, 1e9], [-1e9, 99, 10]])
    bins = metrics.feature_bins(lay, x) - lay.numeric_base
    assert bins.tolist() == [[0, 0], [1, 1], [2, 0], [3, 1], [0, 0]]


def test_bins_agree_with_the_reference_helper() -> None:
    rng = np.random.default_rng(3)
    values = rng.normal(size=1000)
    edges, counts = modelkit.numeric_bins(values)
    lay = metrics.build_layout(model="m", version="1", classes=None, numeric=[("f", 0, edges[1:-1])])
    v = np.zeros(lay.size)
    metrics.observe_features(lay, v, values[:, None])
    slot = lay.numeric[0]
    assert v[slot.offset : slot.offset + len(counts)].tolist() == counts
    assert v[slot.sum_offset] == pytest.approx(values.sum())


def test_missing_values_are_not_counted_and_infinities_not_summed() -> None:
    """As the reference bins: a gap is in no bin; an infinity is in the first or last bin, never in the sum."""
    lay = layout()
    v = np.zeros(lay.size)
    metrics.observe_features(lay, v, np.array([[np.nan, 0, 20], [2.5, 0, np.inf], [np.inf, 0, -np.inf]]))
    a, b = lay.numeric
    assert v[a.offset : a.offset + 4].tolist() == [0, 0, 1, 1]
    assert v[b.offset : b.offset + 2].tolist() == [1, 2]
    assert v[a.sum_offset] == 2.5
    assert v[b.sum_offset] == 20
    metrics.observe_categories(lay, v, [np.array(["red", np.nan, None, "mauve"], dtype=object)])
    c = lay.categorical[0]
    assert v[c.offset : c.offset + 3].tolist() == [1, 0, 1]  # gaps uncounted, as in the reference counts


def test_observe_everything_and_render() -> None:
    lay = layout()
    v = np.zeros(lay.size)
    metrics.observe_features(lay, v, np.array([[0.5, 0, 20], [2.5, 0, 5]]))
    metrics.observe_categories(lay, v, [["red", "mauve", "red", "blue"]])
    metrics.observe_classes(lay, v, np.array([1, 1, 0]))
    metrics.observe_classes(lay, v, np.array([1]))
    metrics.observe_request(lay, v, 200, 0.0003)
    metrics.observe_request(lay, v, 400, 0.02)
    fams = {f.name: f for f in metrics.families(lay, v)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in fams.values() for s in f.samples}
    base = (("model", "m"), ("version", "v1"))

    def get(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted((*base, *labels.items()))))]

    assert get("modelops_requests_total", code="200") == 1
    assert get("modelops_requests_total", code="400") == 1
    assert get("modelops_request_duration_seconds_bucket", le="0.0005") == 1
    assert get("modelops_request_duration_seconds_count") == 2
    assert get("modelops_predictions_total", **{"class": "1"}) == 3
    assert get("modelops_predictions_total", **{"class": "0"}) == 1
    assert get("modelops_feature_bucket", feature="a", le="1.0") == 1
    assert get("modelops_feature_bucket", feature="a", le="3.0") == 2
    assert get("modelops_feature_bucket", feature="a", le="+Inf") == 2
    assert get("modelops_feature_sum", feature="a") == 3.0
    assert get("modelops_feature_bucket", feature="b", le="10.0") == 1
    assert get("modelops_feature_category_total", feature="colour", category="red") == 2
    assert get("modelops_feature_category_total", feature="colour", category="__other__") == 1


def test_regression_layout_has_value_histogram() -> None:
    lay = metrics.build_layout(model="m", version="1", classes=None, prediction_bounds=[0.0, 100.0])
    v = np.zeros(lay.size)
    metrics.observe_predictions(lay, v, np.array([-1.0, 0.0, 50.0, 150.0]))
    names = {f.name for f in metrics.families(lay, v)}
    assert "modelops_prediction_value" in names
    assert "modelops_predictions" not in names
    assert v[lay.prediction_offset : lay.prediction_offset + 3].tolist() == [2, 1, 1]
    assert v[lay.prediction_sum] == 199.0


def test_prediction_bounds_are_sorted_unique() -> None:
    bounds = metrics.prediction_bounds_from(np.linspace(0, 1000, 500))
    assert list(bounds) == sorted(set(bounds))
    assert len(bounds) == 9


def test_file_stores_sum_across_workers(tmp_path: Path) -> None:
    lay = layout()
    a = metrics.Store(lay, tmp_path, slot=0)
    b = metrics.Store(lay, tmp_path, slot=1)
    metrics.observe_request(lay, a.values, 200, 0.001)
    metrics.observe_request(lay, b.values, 200, 0.001)
    metrics.observe_request(lay, b.values, 404, 0.001)
    total = a.snapshot()
    assert total[lay.code_offset[200]] == 2
    assert total[lay.code_offset[404]] == 1
    # A restarted worker reopens its slot and keeps counting from where it was.
    again = metrics.Store(lay, tmp_path, slot=1)
    assert again.values[lay.code_offset[200]] == 1
    # A file of another layout (stale, another model) is never summed.
    other = metrics.Store(layout(version="v2"), tmp_path, slot=0)
    metrics.observe_request(other.layout, other.values, 200, 0.001)
    assert b.snapshot()[lay.code_offset[200]] == 2


def test_exposition_parses_with_prometheus_parser(tmp_path: Path) -> None:
    lay = layout()
    store = metrics.Store(lay, tmp_path, slot=0)
    metrics.observe_features(lay, store.values, np.array([[1.5, 0, 1]]))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics.Collector(store))
    text = generate_latest(registry).decode()
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    assert parsed["modelops_feature"].type == "histogram"
    les = [s.labels["le"] for s in parsed["modelops_feature"].samples
           if s.name == "modelops_feature_bucket" and s.labels["feature"] == "a"]  # fmt: skip
    assert [float(x) for x in les] == [1.0, 2.0, 3.0, float("inf")]
    assert parsed["modelops_requests"].type == "counter"


def test_recorder_batches_and_flushes_exactly() -> None:
    lay = layout()
    direct = np.zeros(lay.size)
    batched = np.zeros(lay.size)
    rec = metrics.Recorder(lay, batched, rows=8)
    rng = np.random.default_rng(0)
    for i in range(40):
        rows = rng.normal(2, 2, size=(1 + i % 11, 3))
        metrics.observe_features(lay, direct, rows)
        rec.rows(rows)
        idx = rng.integers(0, 2, size=rows.shape[0])
        metrics.observe_classes(lay, direct, idx)
        rec.classes(idx)
        metrics.observe_request(lay, direct, 200 if i % 3 else 400, i / 1000)
        rec.request(200 if i % 3 else 400, i / 1000)
    rec.flush()
    np.testing.assert_allclose(batched, direct)
    rec.flush()  # idempotent when nothing is pending
    np.testing.assert_allclose(batched, direct)


def test_dropped_connections_have_their_own_slots_summed_across_workers(tmp_path: Path) -> None:
    lay = layout()
    a = metrics.Store(lay, tmp_path, slot=0)
    b = metrics.Store(lay, tmp_path, slot=1)
    rec_a, rec_b = metrics.Recorder(lay, a.values), metrics.Recorder(lay, b.values)
    rec_a.dropped("header_timeout")
    rec_a.dropped("header_timeout")
    rec_b.dropped("over_limit")
    rec_b.request(431, 0.0001)
    rec_a.flush()
    rec_b.flush()
    samples = {
        (s.name, s.labels.get("reason"), s.labels.get("code")): s.value
        for f in metrics.families(lay, a.snapshot())
        for s in f.samples
    }
    assert samples[("modelops_connections_dropped_total", "header_timeout", None)] == 2
    assert samples[("modelops_connections_dropped_total", "over_limit", None)] == 1
    for reason in ("reclaimed", "body_timeout", "send_timeout"):
        assert samples[("modelops_connections_dropped_total", reason, None)] == 0
    # A dropped connection is not a request: only the 431 was counted as one.
    assert sum(v for (n, _, _), v in samples.items() if n == "modelops_requests_total") == 1
    assert samples[("modelops_requests_total", None, "431")] == 1
