"""Feedback labels accepted per second by one ``modelops serve`` worker.

One worker (``--workers 1 --feedback-keys``) serves ``run.py``'s breast_cancer model. The ids are
made here with the server's own key, scope and version (:class:`modelops.serve.tokens.Signer`, the
code the server signs with), all distinct, so every label is checked, deduplicated and counted:
none is a duplicate. Three shapes of request, each sent by a keep-alive client for ``--duration``
seconds:

- ``1 x 1``: one label of a single-row id per request (the per-request floor);
- ``1000 x 1``: an array of 1000 labels of single-row ids per request;
- ``10 x 100``: ten labels-lists, each all 100 rows of a batch id (``{"id", "actual": [...]}``).

Reported: labels counted per second of wall time, and per second of the worker's own CPU time
(from ``/proc/<pid>/stat``), which is what one worker can do whatever the client costs. On a
machine with two cores or more the server is pinned to core 1 and the client stays on core 0.

    python bench/serve/feedback.py --duration 10
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

import numpy as np
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (the model and the helpers of bench/serve/run.py)

from modelops.serve import tokens  # noqa: E402


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, pid: int, bodies: Any, per_request: int, duration: float) -> dict[str, float]:
    session = requests.Session()
    sent = counted = 0
    cpu = cpu_seconds(pid)
    started = time.monotonic()
    while time.monotonic() - started < duration:
        r = session.post(f"{url}/v2/models/{run.NAME}/feedback", data=next(bodies),
                         headers={"content-type": "application/json"}, timeout=30)  # fmt: skip
        answer = r.json()
        if r.status_code != 200 or answer["duplicates"] or answer["refused"]:
            raise SystemExit(f"feedback.py: not every label counted: {r.status_code} {str(answer)[:300]}")
        sent += 1
        counted += answer["counted"]
    wall = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu
    assert counted == sent * per_request
    return {"labels": counted, "per_s": counted / wall, "per_cpu_s": counted / cpu if cpu else float("nan"),
            "worker_cpu_share": cpu / wall}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per request shape (default 10)")
    args = p.parse_args()
    cores = len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="modelops-feedback-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        model_dir, _ = run.make_model(work)
        keys = work / "keys"
        keys.mkdir()
        key = os.urandom(32)
        (keys / "key-1").write_bytes(key)
        port = run.free_port()
        command = [sys.executable, "-m", "modelops", "serve", "--model-dir", str(model_dir), "--port", str(port),
                   "--workers", "1", "--feedback-keys", str(keys)]  # fmt: skip
        if cores >= 2:
            command = ["taskset", "-c", "1", *command]
            os.sched_setaffinity(0, {0})
        env = {**os.environ, "PYTHONPATH": str(run.ROOT / "operator")}
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        run.wait_ready(url, procs[0])
        pid = procs[0].pid
        signer = tokens.Signer(1, tokens.subkey(key, "", run.NAME), "1", ("0", "1"))
        rng = np.random.default_rng(0)

        def single_row_bodies(per_request: int) -> Any:
            while True:
                items = [{"id": signer.one_class(int(rng.integers(0, 2))), "actual": int(rng.integers(0, 2))}
                         for _ in range(per_request)]  # fmt: skip
                yield json.dumps(items if per_request > 1 else items[0])

        def batch_bodies() -> Any:
            while True:
                items = [{"id": signer.classes_of(rng.integers(0, 2, 100)), "actual": rng.integers(0, 2, 100).tolist()}
                         for _ in range(10)]  # fmt: skip
                yield json.dumps(items)

        print(f"{'request shape':16s} {'labels/s':>10s} {'labels per worker CPU-s':>24s} {'worker CPU share':>17s}")
        results = {}
        for label, bodies, per_request in (
            ("1 x 1", single_row_bodies(1), 1),
            ("1000 x 1", single_row_bodies(1000), 1000),
            ("10 x 100", batch_bodies(), 1000),
        ):
            measure(url, pid, bodies, per_request, min(2.0, args.duration))  # warm-up
            result = measure(url, pid, bodies, per_request, args.duration)
            results[label] = result
            print(f"{label:16s} {result['per_s']:10.0f} {result['per_cpu_s']:24.0f} {result['worker_cpu_share']:17.2f}",
                  flush=True)  # fmt: skip
        (HERE / "feedback-results.json").write_text(json.dumps(results, indent=2) + "\n")
        return 0
    finally:
        run.stop(procs, work)


if __name__ == "__main__":
    sys.exit(main())
