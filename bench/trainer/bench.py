"""Benchmark: ``modelops train`` against a plain scikit-learn script doing the same fit.

Generates a synthetic 100k-row, 20-feature classification CSV (``make_classification``),
then runs, alternately and ``--repeat`` times each, the trainer's whole process
(``python -m modelops train``) and ``baseline.py`` with the same estimator, params, split
and metrics. Each process's wall time and peak RSS (``ru_maxrss`` from ``os.wait4`` of that
child alone) are recorded; medians and the ratios are printed. Goal: trainer time at most
1.2x the baseline's, peak RSS at most +100 MB.

Usage (from the repo root): python bench/trainer/bench.py [--rows N] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TIME_GOAL = 1.2
RSS_GOAL_MB = 100.0


def make_data(path: Path, rows: int, seed: int) -> None:
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=rows, n_features=20, n_informative=10, random_state=seed)
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(20)])
    frame["target"] = y
    frame.to_csv(path, index=False)


def measure(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds user+sys) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:4]} failed ({proc.returncode}): {err}")
    return wall, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-estimators", type=int, default=30)
    parser.add_argument("--max-depth", type=int, default=10)
    args = parser.parse_args()
    seed, test_size = 42, 0.2

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "operator"), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory(prefix="modelops-bench-") as tmp:
        work = Path(tmp)
        data = work / "data.csv"
        make_data(data, args.rows, seed)
        config = {
            "model": "bench",
            "dataset": {"uri": data.as_uri(), "target": "target", "testSize": test_size, "seed": seed},
            "estimator": {
                "className": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": args.n_estimators, "max_depth": args.max_depth},
                "preprocessing": {"scaleNumeric": False},
            },
        }
        (work / "run.json").write_text(json.dumps(config))
        trainer = [sys.executable, "-m", "modelops", "train", "--config", str(work / "run.json"),
                   "--output", str(work / "out"), "--termination-log", str(work / "term")]
        baseline = [sys.executable, str(HERE / "baseline.py"), str(data), str(work / "baseline.joblib"),
                    str(args.n_estimators), str(args.max_depth), str(seed), str(test_size)]
        print(f"data: {args.rows} rows x 20 features, {data.stat().st_size / 1e6:.1f} MB CSV; "
              f"RandomForestClassifier(n_estimators={args.n_estimators}, max_depth={args.max_depth}); "
              f"{args.repeat} repetitions, alternating")
        runs: dict[str, list[tuple[float, float, float]]] = {"trainer": [], "baseline": []}
        for rep in range(args.repeat):
            order = [("trainer", trainer), ("baseline", baseline)]
            if rep % 2:
                order.reverse()
            for name, cmd in order:
                wall, rss, cpu = measure(cmd, env)
                runs[name].append((wall, rss, cpu))
                print(f"  rep {rep} {name:8s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  peak RSS {rss:7.1f} MiB")
        result = json.loads((work / "out" / "result.json").read_text())

    med = {name: tuple(statistics.median(run[i] for run in r) for i in range(3)) for name, r in runs.items()}
    time_ratio = med["trainer"][0] / med["baseline"][0]
    rss_delta = med["trainer"][1] - med["baseline"][1]
    for name in ("trainer", "baseline"):
        wall, rss, cpu = med[name]
        print(f"median   {name:8s} wall {wall:6.2f} s  cpu {cpu:6.2f} s  peak RSS {rss:7.1f} MiB")
    print(f"wall-time ratio {time_ratio:.3f} (goal <= {TIME_GOAL}); "
          f"CPU-time ratio {med['trainer'][2] / med['baseline'][2]:.3f} (less sensitive to other load)")
    print(f"peak RSS ratio {med['trainer'][1] / med['baseline'][1]:.3f}, "
          f"delta {rss_delta:+.1f} MiB (goal <= +{RSS_GOAL_MB:.0f})")
    print(f"trainer metrics: {result['metrics']}")
    ok = time_ratio <= TIME_GOAL and rss_delta <= RSS_GOAL_MB
    print("GOAL MET" if ok else "GOAL MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
