"""Reference bin edges are what the model server accepts, for any finite sample (a property test).

The trainer (``modelops train``), ``modelops drift`` and the model server share one rule for a
numeric feature's reference bins: at least two finite edges, strictly increasing. Given any
non-empty sample of finite floats -- constants, two values, values at the float limits, denormals
-- when :func:`modelops.drift.bins.quantile_edges` builds the edges, then they follow the rule,
the server's contract parser accepts them, and :func:`sorted_counts` counts every value exactly
once into the bin the ``le`` convention gives it.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from modelops.drift import bins
from modelops.serve.contract import parse_result

finite = st.floats(allow_nan=False, allow_infinity=False)
samples = st.one_of(
    st.lists(finite, min_size=1, max_size=60),
    st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=60),
    st.lists(st.sampled_from([-1.7976931348623157e308, 1.7976931348623157e308, 0.0]), min_size=1, max_size=30),
    st.builds(lambda v, n: [v] * n, finite, st.integers(1, 40)),
)


def served(edges: list[float]) -> None:
    """Parse a minimal result.json with these edges as the server does (raises if it refuses them)."""
    parse_result({
        "model": "m", "artifact": {"path": "model.joblib"},
        "signature": {"inputs": [{"name": "x", "datatype": "FP64"}]},
        "referenceStats": {"features": [
            {"name": "x", "kind": "numeric", "edges": edges, "counts": [0] * (len(edges) - 1)},
        ]},
    })  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(samples, st.integers(min_value=1, max_value=12))
def test_edges_are_finite_strictly_increasing_and_count_every_value_once(values: list[float], k: int) -> None:
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    edges = bins.quantile_edges(ordered[np.newaxis, :], k)[0]
    assert edges.size >= 2
    assert bool(np.all(np.isfinite(edges)))
    assert bool(np.all(edges[1:] > edges[:-1])), edges
    served([float(e) for e in edges])
    counts = bins.sorted_counts(ordered, edges)
    assert int(counts.sum()) == ordered.size
    expected = np.bincount(np.searchsorted(edges[1:-1], ordered, side="left"), minlength=edges.size - 1)
    assert counts.tolist() == expected.tolist()


def test_a_constant_keeps_its_own_bin_so_any_departure_shows() -> None:
    for value in (0.0, 3.5, -1e6, 1.7976931348623157e308, -1.7976931348623157e308):
        edges = bins.quantile_edges(np.full((1, 20), value), 10)[0]
        counts = bins.sorted_counts(np.full(20, value), edges)
        assert value in edges.tolist()
        assert counts.tolist().count(20.0) == 1  # every value in one bin, the others empty
        assert edges.size >= 3
