"""Benchmark worker: Evidently's DataDriftPreset on the benchmark's Parquet files.

Run with the Evidently venv's python (its pins stay out of ours):
``/tmp/bench-evidently/bin/python bench/drift/worker_evidently.py REF CUR [REPEAT]``.
Evidently picks the method per column: for numeric columns of more than 1000 rows the
Wasserstein distance normed by the reference's standard deviation, threshold 0.1.
"""

from __future__ import annotations

import sys
from typing import Any

import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
from worker_common import measure


def load(ref_path: str, cur_path: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(ref_path), pd.read_parquet(cur_path)


def compute(frames: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, bool]:
    reference, current = frames
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    verdicts: dict[str, bool] = {}
    for metric in snapshot.dict()["metrics"]:
        config: dict[str, Any] = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            verdicts[config["column"]] = float(metric["value"]) >= float(config["threshold"])
    return verdicts


if __name__ == "__main__":
    ref_path, cur_path = sys.argv[1], sys.argv[2]
    repeat = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    measure("evidently DataDriftPreset", lambda: load(ref_path, cur_path), compute, repeat)
