"""A/B of ``modelops serve`` against another checkout's, or against itself with feedback off, side by side in one run.

Both servers serve the same model (``run.py``'s StandardScaler + LogisticRegression on breast_cancer)
with the same flags, pinned to the same cores, driven by the same wrk (``post.lua``), scenario by
scenario with the peers alternating round by round (as ``run.py`` does against MLServer), so that a
shared machine's noise hits both alike. Prints req/s and p99 of each and the ratio of the first peer
to the second; no MLServer needed.

    python bench/serve/ab.py --baseline /path/to/other/checkout --duration 24 --rounds 24
    python bench/serve/ab.py --feedback --duration 24 --rounds 24   # this tree: feedback ids on / off
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402  (bench/serve/run.py: the model, wrk and the percentile maths)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--baseline", type=Path, help="a checkout of the project (its operator/ is used)")
    which.add_argument(
        "--feedback", action="store_true", help="this tree with --feedback-keys (ids in every answer) against without"
    )
    p.add_argument("--duration", type=int, default=12, help="seconds per scenario and peer (default 12)")
    p.add_argument("--rounds", type=int, default=12, help="alternating rounds the duration is split into (default 12)")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per peer and body (default 3)")
    p.add_argument("--workers", type=int, default=1, help="worker processes of each server (default 1)")
    args = p.parse_args()
    if args.baseline is not None and not (args.baseline / "operator" / "modelops").is_dir():
        print(f"ab.py: {args.baseline} has no operator/modelops", file=sys.stderr)
        return 2

    cores = len(os.sched_getaffinity(0))
    wrk_cpus = "0" if cores >= 2 else None
    server_cpus = f"1-{cores - 1}" if cores >= 2 else None
    work = Path(tempfile.mkdtemp(prefix="modelops-ab-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        model_dir, test_x = run.make_model(work)
        bodies = {"single": work / "single.json", "batch100": work / "batch100.json"}
        bodies["single"].write_bytes(run.body(test_x.to_numpy()[:1]))
        bodies["batch100"].write_bytes(run.body(test_x.to_numpy()[:100]))
        peers: dict[str, str] = {}
        if args.feedback:
            keys = work / "keys"
            keys.mkdir()
            (keys / "key-1").write_bytes(os.urandom(32))
            sides = [("feedback", run.ROOT, ["--feedback-keys", str(keys)]), ("no feedbk", run.ROOT, [])]
        else:
            sides = [("this tree", run.ROOT, []), ("baseline", args.baseline.resolve(), [])]
        for peer, source, extra in sides:
            port = run.free_port()
            command = [sys.executable, "-m", "modelops", "serve", "--model-dir", str(model_dir), "--port", str(port),
                       "--workers", str(args.workers), *extra]  # fmt: skip
            if server_cpus:
                command = ["taskset", "-c", server_cpus, *command]
            env = {**os.environ, "PYTHONPATH": str(source / "operator")}
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            peers[peer] = f"http://127.0.0.1:{port}"
            run.wait_ready(peers[peer], proc)

        answers = set()
        for url in peers.values():
            r = requests.post(f"{url}/v2/models/{run.NAME}/infer", data=bodies["batch100"].read_bytes(), timeout=10,
                              headers={"content-type": "application/json"})  # fmt: skip
            r.raise_for_status()
            answers.add(tuple(int(v) for v in np.ravel(r.json()["outputs"][0]["data"])))
        assert len(answers) == 1, "the two servers disagree"

        pids = [proc.pid for proc in procs]
        for url in peers.values():
            for b in bodies.values():
                run.wrk(url, b, 16, args.warmup, wrk_cpus, pids)
        chunk = max(1, args.duration // args.rounds)
        print(f"{'scenario':14s} {'peer':10s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'non-2xx':>8s}")
        for kind, conns in (("single", 1), ("single", 16), ("batch100", 16)):
            rounds: dict[str, list[dict[str, Any]]] = {peer: [] for peer in peers}
            for i in range(args.rounds):
                for peer in list(peers) if i % 2 == 0 else list(reversed(peers)):
                    rounds[peer].append(run.wrk(peers[peer], bodies[kind], conns, chunk, wrk_cpus, pids))
            rps = {}
            for peer, runs in rounds.items():
                pooled: dict[int, int] = {}
                for x in runs:
                    for value, count in x.pop("histogram").items():
                        pooled[value] = pooled.get(value, 0) + count
                rps[peer] = sum(x["requests"] for x in runs) / (chunk * len(runs))
                print(f"{kind + ' c' + str(conns):14s} {peer:10s} {rps[peer]:9.0f} {run.percentile(pooled, 50):8.3f} "
                      f"{run.percentile(pooled, 99):8.3f} {sum(x['non2xx'] for x in runs):8d}", flush=True)  # fmt: skip
            first, second = list(peers)
            print(f"{'':14s} ratio {first} / {second}: {rps[first] / rps[second]:.3f}", flush=True)
        return 0
    finally:
        run.stop(procs, work)


if __name__ == "__main__":
    sys.exit(main())
