"""modelops.drift vs Evidently's DataDriftPreset, in one run.

Generates 100k reference rows x 30 normal features and 100k current rows with three
features shifted, writes them once as Parquet, then runs each contender as its own
subprocess (so memory is measured per process): our library in several modes with this
interpreter, the issue's naive per-column loop, and Evidently with the interpreter of its
own venv. Compute time excludes data loading; memory is each process's RSS after loading
(the baseline) and its peak RSS (``ru_maxrss``). Prints the comparison and the ratios
against the issue's goals (>= 30x faster than Evidently, <= 1/4 of its peak memory, same
verdicts) and writes them to ``--output`` as JSON.

    cd /work/main && . .venv/bin/activate && \
        python bench/drift/run_bench.py --evidently-python /tmp/bench-evidently/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SHIFTED = {"f03": "mean +1.0 sd", "f11": "mean +0.75 sd", "f20": "sd x 2"}
# (mode, loader) of our worker; see worker_modelops.py.
CONTENDERS = [
    ("psi", "stream"),
    ("wasserstein", "stream"),
    ("all", "stream"),
    ("psi", "pandas"),
    ("psi", "arrow"),
    ("wasserstein", "pandas"),
    ("psi+ks", "pandas"),
    ("all", "pandas"),
    ("all", "arrow"),
    ("naive", "pandas"),
]
SPEED_GOAL = 30.0
MEMORY_GOAL = 0.25


def generate(rows: int, columns: int, seed: int, directory: Path) -> tuple[Path, Path]:
    """Write the two Parquet files, in a child process.

    The parent must stay small: Linux reports a child's ``ru_maxrss`` as at least the
    parent's peak RSS (it is carried across exec), which would put a floor under the peak
    memory measured for the CLI runs below.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = directory / "reference.parquet", directory / "current.parquet"
    subprocess.run(
        [sys.executable, __file__, "--write-data", str(rows), str(columns), str(seed), str(ref_path), str(cur_path)],
        check=True,
    )
    return ref_path, cur_path


def write_data(rows: int, columns: int, seed: int, ref_path: Path, cur_path: Path) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    names = [f"f{index:02d}" for index in range(columns)]
    reference = pd.DataFrame(rng.normal(size=(rows, columns)), columns=names)
    current = pd.DataFrame(rng.normal(size=(rows, columns)), columns=names)
    current["f03"] += 1.0
    current["f11"] += 0.75
    current["f20"] *= 2.0
    reference.to_parquet(ref_path)
    current.to_parquet(cur_path)


def run_worker(command: list[str], env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=HERE, check=False)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"worker failed: {' '.join(command)}\n{completed.stderr}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def run_cli(method: str, files: list[str], env: dict[str, str], repeat: int) -> dict[str, Any]:
    """``modelops drift`` itself, as a user runs it: wall time and the peak RSS of the whole process."""
    command = [sys.executable, "-m", "modelops", "drift", "--reference", files[0], "--current", files[1],
               "--method", method, "--format", "json"]  # fmt: skip
    walls: list[float] = []
    peaks: list[float] = []
    report: dict[str, Any] = {}
    for _ in range(repeat):
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            started = time.perf_counter()
            proc = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=HERE)
            # wait4 gives this child's own rusage: ru_maxrss is its peak RSS in KiB.
            _, status, usage = os.wait4(proc.pid, 0)
            walls.append(time.perf_counter() - started)
            proc.returncode = code = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            if code not in (0, 1):  # 1 means "drift found"
                raise SystemExit(f"modelops drift failed ({code}): {err.read().decode()}")
            report = json.loads(out.read())
        peaks.append(usage.ru_maxrss / 1024)
    walls.sort()
    return {
        "name": f"modelops drift CLI --method {method}",
        "wall_s": walls,
        # The whole command: interpreter start, imports, reading both files, computing, printing.
        "compute_median_s": walls[len(walls) // 2],
        "rss_after_load_mb": 0.0,
        "peak_rss_mb": max(peaks),
        "drifted": sorted(report["driftedFeatures"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--evidently-python", default="/tmp/bench-evidently/bin/python")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="compute runs per worker (median reported)")
    parser.add_argument("--evidently-repeat", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/modelops-drift-bench"))
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args()

    ref_path, cur_path = generate(args.rows, args.columns, args.seed, args.data_dir)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "operator"), str(HERE)]))
    files = [str(ref_path), str(cur_path)]
    results = {}
    for mode, loader in CONTENDERS:
        command = [sys.executable, str(HERE / "worker_modelops.py"), mode, loader, *files, str(args.repeat)]
        results[f"{mode} ({loader})"] = run_worker(command, env)
    for method in ("psi", "wasserstein"):
        results[f"cli {method}"] = run_cli(method, files, env, args.repeat)
    evidently_env = dict(os.environ, PYTHONPATH=str(HERE))
    command = [args.evidently_python, str(HERE / "worker_evidently.py"), *files, str(args.evidently_repeat)]
    results["evidently"] = run_worker(command, evidently_env)

    evidently = results["evidently"]
    expected = sorted(SHIFTED)
    print(f"data: {args.rows} x {args.columns} vs {args.rows} x {args.columns}, shifted {SHIFTED}")
    print(
        f"{'contender':<38} {'compute s':>9} {'speedup':>8} {'rss@load':>8} {'peak':>6} {'peak/ev':>7} "
        f"{'compute MB':>10} {'/ev':>5}  drifted"
    )
    summary = {}
    evidently_compute_mb = max(1e-9, evidently["peak_rss_mb"] - evidently["rss_after_load_mb"])
    for key, result in results.items():
        speedup = evidently["compute_median_s"] / result["compute_median_s"]
        memory = result["peak_rss_mb"] / evidently["peak_rss_mb"]
        # What the computation itself added on top of the process with its data loaded.
        result["compute_mb"] = max(0.0, result["peak_rss_mb"] - result["rss_after_load_mb"])
        compute_memory = result["compute_mb"] / evidently_compute_mb
        same = result["drifted"] == evidently["drifted"]
        summary[key] = {
            "speedup": speedup,
            "peak_ratio": memory,
            "compute_memory_ratio": compute_memory,
            "same_verdicts_as_evidently": same,
        }
        print(
            f"{result['name']:<38} {result['compute_median_s']:>9.3f} {speedup:>7.1f}x "
            f"{result['rss_after_load_mb']:>8.0f} {result['peak_rss_mb']:>6.0f} {memory:>7.2f} "
            f"{result['compute_mb']:>10.0f} {compute_memory:>5.2f}  "
            f"{','.join(result['drifted'])}{'' if same else '  (differs from Evidently)'}"
        )
    print("(MB are MiB of RSS; rss@load = after loading the data; compute MB = peak - rss@load)")
    print()
    for key in ("cli psi", "cli wasserstein", "psi (stream)", "wasserstein (stream)", "all (stream)", "psi (pandas)"):
        entry = summary[key]
        print(
            f"{key:<20} speed {entry['speedup']:6.1f}x ({'MET' if entry['speedup'] >= SPEED_GOAL else 'MISSED'} "
            f">= {SPEED_GOAL:.0f}x); peak RSS {entry['peak_ratio']:.2f} of Evidently's "
            f"({'MET' if entry['peak_ratio'] <= MEMORY_GOAL else 'MISSED'} <= {MEMORY_GOAL}); compute memory "
            f"{entry['compute_memory_ratio']:.2f} of Evidently's "
            f"({'MET' if entry['compute_memory_ratio'] <= MEMORY_GOAL else 'MISSED'})"
        )
    verdicts_ok = all(results[key]["drifted"] == evidently["drifted"] == expected for key in results)
    print(f"verdicts: Evidently {evidently['drifted']}, expected {expected}, all contenders agree: {verdicts_ok}")
    args.output.write_text(json.dumps({"shifted": SHIFTED, "results": results, "summary": summary}, indent=2))
    return 0 if verdicts_ok else 1


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write-data"]:
        rows, columns, seed, ref, cur = sys.argv[2:7]
        write_data(int(rows), int(columns), int(seed), Path(ref), Path(cur))
        raise SystemExit(0)
    raise SystemExit(main())
