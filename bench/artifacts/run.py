"""Artifact formats side by side: our skops archives against joblib pickles, size and load time.

For a few models, from a three-class linear model to a 100-tree forest, each is written both
ways in one process — joblib as ``joblib.dump`` does it, skops as the trainer does
(``modelops.train.output.model_bytes``: canonical skops) — and loaded both ways from the same
bytes in memory, alternating the order each round: ``joblib.load``, and the model server's
loader (``modelops.serve.loading.load_model``: the audit of every node's type, skops with the
trusted list, the tree checks). Plain ``skops.io.loads`` is timed too, to show what our audit and
checks add. The one-off import of each library is measured in fresh processes. Ratios are
skops / joblib; medians over ``--repeat`` rounds.

    python bench/artifacts/run.py --repeat 15 --output bench/artifacts/results.json
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
import skops.io
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from modelops.serve import loading, trusted
from modelops.train import output


def models() -> dict[str, Any]:
    """Fitted pipelines as the trainer builds them (scaler + estimator), small to large."""
    iris_x, iris_y = load_iris(return_X_y=True)
    bc_x, bc_y = load_breast_cancer(return_X_y=True)
    big_x, big_y = make_classification(n_samples=20_000, n_features=20, n_informative=10, random_state=0)

    def pipe(estimator: Any, x: Any, y: Any) -> Pipeline:
        return Pipeline([("scale", StandardScaler()), ("estimator", estimator)]).fit(x, y)

    return {
        "logistic regression, iris": pipe(LogisticRegression(max_iter=1000), iris_x, iris_y),
        "k-neighbours, breast_cancer": pipe(KNeighborsClassifier(), bc_x, bc_y),
        "hist gradient boosting (100 iterations), breast_cancer": pipe(
            HistGradientBoostingClassifier(max_iter=100, random_state=0), bc_x, bc_y
        ),
        "random forest, 10 trees, 20k rows": pipe(RandomForestClassifier(10, random_state=0), big_x, big_y),
        "random forest, 100 trees, 20k rows": pipe(RandomForestClassifier(100, random_state=0), big_x, big_y),
    }


def _timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(model: Any, repeat: int) -> dict[str, Any]:
    dump_joblib = [_timed(lambda: joblib.dump(model, io.BytesIO())) for _ in range(3)]
    joblib_buffer = io.BytesIO()
    joblib.dump(model, joblib_buffer)
    joblib_bytes = joblib_buffer.getvalue()
    dump_skops = [_timed(lambda: output.model_bytes(model)) for _ in range(3)]
    skops_bytes = output.model_bytes(model)
    trusted_list = sorted(trusted.trusted())
    loads: dict[str, list[float]] = {"joblib": [], "skops (server)": [], "skops (plain)": []}
    runs: dict[str, Callable[[], Any]] = {
        "joblib": lambda: joblib.load(io.BytesIO(joblib_bytes)),
        "skops (server)": lambda: loading.load_model(skops_bytes, "skops", "bench", allow_pickle=False),
        "skops (plain)": lambda: skops.io.loads(skops_bytes, trusted=trusted_list),
    }
    for round_ in range(repeat):
        order = list(runs) if round_ % 2 == 0 else list(reversed(runs))
        for name in order:
            loads[name].append(_timed(runs[name]))
    x = np.zeros((3, model.n_features_in_))
    same = np.array_equal(
        joblib.load(io.BytesIO(joblib_bytes)).predict_proba(x), runs["skops (server)"]().predict_proba(x)
    )
    median = {name: statistics.median(values) for name, values in loads.items()}
    return {
        "sizeBytes": {"joblib": len(joblib_bytes), "skops": len(skops_bytes)},
        "sizeRatio": len(skops_bytes) / len(joblib_bytes),
        "loadSeconds": median,
        "loadRatio": median["skops (server)"] / median["joblib"],
        "plainSkopsLoadRatio": median["skops (plain)"] / median["joblib"],
        "dumpSeconds": {"joblib": statistics.median(dump_joblib), "skops": statistics.median(dump_skops)},
        "samePredictions": same,
    }


def import_seconds(module: str, repeat: int = 5) -> float:
    """Median wall time of ``import <module>`` in a fresh interpreter (after numpy and sklearn)."""
    code = (
        "import time, numpy, sklearn, sklearn.pipeline\n"
        f"t = time.perf_counter(); import {module}; print(time.perf_counter() - t)\n"
    )
    times = []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip()))
    return statistics.median(times)


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="load rounds per model (median reported)")
    parser.add_argument("--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "versions": {"scikit-learn": sklearn.__version__, "skops": skops.__version__, "joblib": joblib.__version__},
        "repeat": args.repeat,
        "models": {},
    }
    for name, model in models().items():
        results["models"][name] = measure(model, args.repeat)
        print(f"measured {name}", file=sys.stderr, flush=True)
    results["importSeconds"] = {"joblib": import_seconds("joblib"), "skops.io": import_seconds("skops.io")}
    print("| model | joblib size | skops size | size ratio | joblib load | skops load (server) | load ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, row in results["models"].items():
        load = row["loadSeconds"]
        print(
            f"| {name} | {_mib(row['sizeBytes']['joblib'])} | {_mib(row['sizeBytes']['skops'])} | "
            f"{row['sizeRatio']:.2f}x | {load['joblib'] * 1e3:.1f} ms | {load['skops (server)'] * 1e3:.1f} ms | "
            f"{row['loadRatio']:.1f}x (plain skops {row['plainSkopsLoadRatio']:.1f}x) |"
        )
    imports = results["importSeconds"]
    print(f"\nimport after numpy + sklearn: joblib {imports['joblib']:.2f} s, skops.io {imports['skops.io']:.2f} s")
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
