"""Benchmark ``modelops serve`` against MLServer (mlserver-sklearn) on the same model, in one run.

Both serve StandardScaler + LogisticRegression on breast_cancer, the same fitted pipeline (ours as
the skops archive it now loads by default, MLServer's as the joblib file its runtime reads), with
the same worker count, and are driven by the same load generator (Debian's ``wrk``, one thread,
``post.lua``): single rows at concurrency 1 and 16, and 100-row batches at concurrency 16. Peers
alternate within each scenario, servers are pinned to one core set and wrk to another when the
machine has at least two cores. Prints req/s, p99 and the ratios, and writes them as JSON.

    python bench/serve/run.py --duration 12 --mlserver /tmp/bench-mlserver/bin/mlserver

MLServer lives in its own venv so that its pins never touch the project's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import requests

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "tests" / "serve")]

import modelkit  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

NAME = "breast-cancer"
#: A round counts as quiet when everything else on the machine used less CPU than this during it.
QUIET_CORES = 0.15


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def make_model(work: Path) -> tuple[Path, Any]:
    data = load_breast_cancer(as_frame=True)
    x, y = data.data, data.target.to_numpy()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    cut = int(len(x) * 0.8)
    train_x, test_x = x.iloc[order[:cut]].reset_index(drop=True), x.iloc[order[cut:]].reset_index(drop=True)
    # Fitted on a plain matrix, as MLServer's runtime will call it: no feature-name warnings for either peer.
    pipe = Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=5000))])
    pipe.fit(train_x.to_numpy(), y[order[:cut]])
    ours = modelkit.write_model_dir(
        work / "ours", name=NAME, pipeline=pipe, train_x=train_x, test_x=test_x, task="classification"
    )
    mls = work / "mlserver"
    (mls / NAME).mkdir(parents=True)
    joblib.dump(pipe, mls / NAME / "model.joblib")
    (mls / NAME / "model-settings.json").write_text(json.dumps({
        "name": NAME, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }))  # fmt: skip
    return ours.path, test_x


def body(rows: np.ndarray) -> bytes:
    return json.dumps({
        "inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64", "data": rows.ravel().tolist()}]
    }).encode()  # fmt: skip


def wait_ready(url: str, proc: subprocess.Popen[bytes], deadline_s: float = 90.0) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server for {url} exited with {proc.returncode}")
        try:
            if requests.get(f"{url}/v2/models/{NAME}/ready", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready within {deadline_s} s")


def _busy_jiffies() -> int:
    """CPU time (all cores) spent busy since boot, in clock ticks, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]) - idle


def _process_jiffies(pids: list[int]) -> int:
    """utime + stime of these processes and of their threads, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(stat[11]) + int(stat[12])
    return total


def percentile(histogram: dict[int, int], q: float) -> float:
    """The q-th percentile, in ms, of a latency histogram {microseconds: count} (wrk's definition)."""
    total = sum(histogram.values())
    rank = max(1, math.ceil(total * q / 100))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value / 1000
    return 0.0


def wrk(
    url: str, body_file: Path, connections: int, duration: int, cpus: str | None, pids: list[int]
) -> dict[str, Any]:
    """One wrk run; also how much CPU processes other than wrk, the bench and ``pids`` used meanwhile."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(HERE / "post.lua"), url]
    if cpus:
        command = ["taskset", "-c", cpus, *command]
    env = {**os.environ, "BODY_FILE": str(body_file), "URL_PATH": f"/v2/models/{NAME}/infer"}
    busy, ours = _busy_jiffies(), _process_jiffies([os.getpid(), *pids])
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_jiffies = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) * os.sysconf("SC_CLK_TCK")
    foreign = (_busy_jiffies() - busy) - (_process_jiffies([os.getpid(), *pids]) - ours) - wrk_jiffies
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"BENCH p50_us=(\d+) p99_us=(\d+) requests=(\d+)", out)
    assert m, out
    hist = re.search(r"HIST (\S*)", out)
    assert hist, out
    histogram = {int(v): int(c) for v, c in (pair.split(":") for pair in hist.group(1).split(",") if pair)}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps, "p50_ms": int(m.group(1)) / 1000, "p99_ms": int(m.group(2)) / 1000,
        "requests": int(m.group(3)), "non2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
        # Cores' worth of CPU used by everything else on the machine during this run.
        "other_cpu_cores": max(0.0, foreign / os.sysconf("SC_CLK_TCK") / elapsed),
        "histogram": histogram,
    }  # fmt: skip


def stop(procs: list[subprocess.Popen[bytes]], work: Path) -> None:
    """Stop the servers (SIGTERM, then SIGKILL after 15 s) and remove the work dir."""
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=int, default=12, help="seconds per measurement (default 12)")
    p.add_argument("--rounds", type=int, default=12, help="alternating rounds the duration is split into")
    p.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per peer and body")
    p.add_argument("--workers", type=int, default=1, help="worker processes of each peer (default 1)")
    p.add_argument("--mlserver", default="/tmp/bench-mlserver/bin/mlserver", help="the mlserver executable")
    p.add_argument("--with-uvicorn", action="store_true", help="also run our App on uvicorn (HTTP layer check)")
    p.add_argument("--no-pin", action="store_true", help="do not pin servers and wrk to separate cores")
    p.add_argument("--no-floor", action="store_true", help="do not measure the do-nothing server (floor.py) at c1")
    p.add_argument("--out", type=Path, default=HERE / "results.json")
    args = p.parse_args()

    cores = len(os.sched_getaffinity(0))
    pin = not args.no_pin and cores >= 2
    wrk_cpus = "0" if pin else None
    server_cpus = f"1-{cores - 1}" if pin else None
    work = Path(tempfile.mkdtemp(prefix="modelops-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        model_dir, test_x = make_model(work)
        bodies = {"single": work / "single.json", "batch100": work / "batch100.json"}
        bodies["single"].write_bytes(body(test_x.to_numpy()[:1]))
        bodies["batch100"].write_bytes(body(test_x.to_numpy()[:100]))

        def start(command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
            if server_cpus:
                command = ["taskset", "-c", server_cpus, *command]
            proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(proc)
            return proc

        peers: dict[str, str] = {}
        env = {**os.environ, "PYTHONPATH": str(ROOT / "operator")}
        port = free_port()
        proc = start([sys.executable, "-m", "modelops", "serve", "--model-dir", str(model_dir), "--port", str(port),
                      "--workers", str(args.workers)], env)  # fmt: skip
        peers["modelops"] = f"http://127.0.0.1:{port}"
        wait_ready(peers["modelops"], proc)

        mls_dir = work / "mlserver"
        http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
        (mls_dir / "settings.json").write_text(json.dumps({
            "http_port": http_port, "grpc_port": grpc_port, "metrics_port": metrics_port,
            # One process serving HTTP and inference per worker, as ours: 0 keeps inference in-process.
            "parallel_workers": 0 if args.workers == 1 else args.workers,
        }))  # fmt: skip
        proc = start([args.mlserver, "start", str(mls_dir)])
        peers["mlserver"] = f"http://127.0.0.1:{http_port}"
        wait_ready(peers["mlserver"], proc)

        if args.with_uvicorn:
            port = free_port()
            proc = start([sys.executable, str(HERE / "asgi_adapter.py"), "--model-dir", str(model_dir),
                          "--name", NAME, "--port", str(port)], env)  # fmt: skip
            peers["modelops-on-uvicorn"] = f"http://127.0.0.1:{port}"
            wait_ready(peers["modelops-on-uvicorn"], proc)

        if not args.no_floor:
            port = free_port()
            proc = start([sys.executable, str(HERE / "floor.py"), "--port", str(port)], env)
            floor = f"http://127.0.0.1:{port}"
            wait_ready(floor, proc)

        # Same answers from every peer before any timing.
        answers = {}
        for peer, url in peers.items():
            answer = requests.post(
                f"{url}/v2/models/{NAME}/infer",
                data=bodies["batch100"].read_bytes(),
                timeout=10,
                headers={"content-type": "application/json"},
            )
            answer.raise_for_status()
            answers[peer] = [int(v) for v in np.ravel(answer.json()["outputs"][0]["data"])]
        assert len({tuple(a) for a in answers.values()}) == 1, answers

        pids = [proc.pid for proc in procs]
        for url in peers.values():
            for b in bodies.values():
                wrk(url, b, 16, args.warmup, wrk_cpus, pids)

        # Each scenario's time is split into rounds, peers alternating, so that a burst of noise on a
        # shared machine hits every peer alike. req/s is over all rounds; p50/p99 are over all
        # requests of all rounds (wrk's histograms, pooled). At c1 the do-nothing server (floor.py)
        # takes part too: its p99 is what the machine alone adds to a request.
        scenarios = [("single", 1), ("single", 16), ("batch100", 16)]
        results: dict[str, dict[str, dict[str, Any]]] = {}
        chunk = max(1, args.duration // args.rounds)
        for kind, conns in scenarios:
            key = f"{kind} c{conns}"
            targets = dict(peers)
            if key == "single c1" and not args.no_floor:
                targets["floor"] = floor
            rounds: dict[str, list[dict[str, Any]]] = {peer: [] for peer in targets}
            for i in range(args.rounds):
                order = list(targets) if i % 2 == 0 else list(reversed(targets))
                for peer in order:
                    rounds[peer].append(wrk(targets[peer], bodies[kind], conns, chunk, wrk_cpus, pids))
            results[key] = {}
            for peer, runs in rounds.items():
                pooled: dict[int, int] = {}
                quiet: dict[int, int] = {}  # rounds during which the rest of the machine was nearly idle
                quiet_rounds = 0
                for x in runs:
                    is_quiet = x["other_cpu_cores"] < QUIET_CORES
                    quiet_rounds += is_quiet
                    for value, count in x.pop("histogram").items():
                        pooled[value] = pooled.get(value, 0) + count
                        if is_quiet:
                            quiet[value] = quiet.get(value, 0) + count
                r = {
                    "rps": sum(x["requests"] for x in runs) / (chunk * len(runs)),
                    "p50_ms": percentile(pooled, 50),
                    "p99_ms": percentile(pooled, 99),
                    "p999_ms": percentile(pooled, 99.9),
                    "p99_round_median_ms": float(np.median([x["p99_ms"] for x in runs])),
                    "p99_quiet_ms": percentile(quiet, 99) if quiet else None,
                    "quiet_rounds": quiet_rounds,
                    "other_cpu_cores": float(np.mean([x["other_cpu_cores"] for x in runs])),
                    "non2xx": sum(x["non2xx"] for x in runs),
                    "rounds": runs,
                }
                results[key][peer] = r
                print(
                    f"{key:14s} {peer:20s} {r['rps']:9.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                    f"p99 {r['p99_ms']:6.2f} ms  (median of rounds {r['p99_round_median_ms']:6.2f})  "
                    f"p99.9 {r['p999_ms']:6.2f} ms  non-2xx {r['non2xx']}  other load {r['other_cpu_cores']:.2f} cores",
                    flush=True,
                )

        goals = {"single c1": 2.5, "single c16": 2.5, "batch100 c16": 2.0}
        print(
            "\nscenario        ours req/s  mlserver req/s  ratio (goal)   ours p99  mlserver p99  "
            "p99 ratio (goal <=0.5)"
        )
        summary: dict[str, Any] = {}
        for key, by_peer in results.items():
            ours, theirs = by_peer["modelops"], by_peer["mlserver"]
            ratio = ours["rps"] / theirs["rps"]
            p99_ratio = ours["p99_ms"] / theirs["p99_ms"]
            summary[key] = {"rps_ratio": ratio, "p99_ratio": p99_ratio, "rps_goal": goals[key],
                            "met": ratio >= goals[key] and p99_ratio <= 0.5}  # fmt: skip
            print(f"{key:14s} {ours['rps']:11.0f} {theirs['rps']:15.0f} {ratio:6.2f}x ({goals[key]}x) "
                  f"{ours['p99_ms']:9.2f} ms {theirs['p99_ms']:10.2f} ms {p99_ratio:9.2f}")  # fmt: skip
            if ours["p99_quiet_ms"] and theirs["p99_quiet_ms"]:
                quiet_ratio = ours["p99_quiet_ms"] / theirs["p99_quiet_ms"]
                summary[key]["p99_ratio_quiet_rounds"] = quiet_ratio
                print(f"{'':14s} only rounds with other load < {QUIET_CORES} cores ({ours['quiet_rounds']} ours, "
                      f"{theirs['quiet_rounds']} MLServer's): p99 {ours['p99_quiet_ms']:.2f} ms vs "
                      f"{theirs['p99_quiet_ms']:.2f} ms, ratio {quiet_ratio:.2f}")  # fmt: skip
            if "floor" in by_peer:
                floor_p99 = by_peer["floor"]["p99_ms"]
                summary[key]["floor_p99_ms"] = floor_p99
                print(f"{'':14s} floor (a server doing nothing, same core and wrk): p99 {floor_p99:.2f} ms, "
                      f"{floor_p99 / theirs['p99_ms']:.2f} of MLServer's")  # fmt: skip
        machine = {
            "cores": cores, "pinned": pin,
            "cpu": next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                         if ln.startswith("model name")), "?"),
            "python": sys.version.split()[0],
        }  # fmt: skip
        args.out.write_text(json.dumps(
            {"machine": machine, "duration_s": args.duration, "rounds": args.rounds, "workers": args.workers,
             "results": results, "summary": summary}, indent=2,
        ) + "\n")  # fmt: skip
        print(f"\nwrote {args.out}")
        return 0
    finally:
        stop(procs, work)


if __name__ == "__main__":
    sys.exit(main())
