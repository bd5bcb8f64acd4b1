"""Benchmark worker: modelops.drift (or the issue's naive per-column loop) on the Parquet files.

``python bench/drift/worker_modelops.py MODE LOADER REF CUR [REPEAT]`` with ``PYTHONPATH=operator``;
MODE is ``psi`` (the default method), ``wasserstein`` (the method Evidently picks for these
columns), ``psi+ks`` (what the issue's naive loop computed), ``all`` (the five methods from
one sort), or ``naive`` (the issue's per-column loop: PSI on 10 quantile bins + ks_2samp).
LOADER is ``pandas`` (``pd.read_parquet``, as the Evidently worker loads), ``arrow``
(``pyarrow.parquet.read_table`` and zero-copy numpy columns: the library needs no pandas, so
the process never imports it) or ``stream`` (``modelops.drift.files.load_table``, what
``modelops drift`` itself uses: only the schema is read up front and each column is decoded
when the comparison reaches it, so the decoding is timed as part of the computation).
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
from worker_common import measure

from modelops import drift

MODES = {
    "psi": ("psi",),
    "wasserstein": ("wasserstein",),
    "psi+ks": ("psi", "ks"),
    "all": drift.METHODS,
}


def load(loader: str, ref_path: str, cur_path: str) -> tuple[Any, Any]:
    if loader == "stream":
        from modelops.drift import files

        return files.load_table(ref_path, "reference"), files.load_table(cur_path, "current")
    if loader == "pandas":
        import pandas as pd

        return pd.read_parquet(ref_path), pd.read_parquet(cur_path)
    import pyarrow.parquet as pq

    def columns(path: str) -> dict[str, np.ndarray]:
        table = pq.read_table(path)
        return {name: table.column(name).combine_chunks().to_numpy(zero_copy_only=True) for name in table.column_names}

    return columns(ref_path), columns(cur_path)


def ours(mode: str, frames: tuple[Any, Any]) -> dict[str, bool]:
    reference, current = frames
    reports = drift.compare_methods(reference, current, methods=MODES[mode])
    # The verdict of the mode's first method (psi, or wasserstein) is the one compared.
    report = reports[MODES[mode][0]]
    return {feature.name: feature.drifted for feature in report.features}


def naive(frames: tuple[Any, Any]) -> dict[str, bool]:
    from scipy import stats

    reference, current = frames
    verdicts = {}
    for name in reference:
        ref, cur = np.asarray(reference[name]), np.asarray(current[name])
        edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
        edges[0], edges[-1] = -np.inf, np.inf
        p = np.maximum(np.histogram(ref, edges)[0] / ref.size, 1e-4)
        q = np.maximum(np.histogram(cur, edges)[0] / cur.size, 1e-4)
        psi = float(np.sum((q - p) * np.log(q / p)))
        stats.ks_2samp(ref, cur)
        verdicts[str(name)] = psi >= 0.2
    return verdicts


if __name__ == "__main__":
    mode, loader, ref_path, cur_path = sys.argv[1:5]
    repeat = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    if mode == "naive":
        measure(f"naive loop, psi+ks_2samp ({loader})", lambda: load(loader, ref_path, cur_path), naive, repeat)
    else:
        measure(
            f"modelops.drift {mode} ({loader})",
            lambda: load(loader, ref_path, cur_path),
            lambda frames: ours(mode, frames),
            repeat,
        )
