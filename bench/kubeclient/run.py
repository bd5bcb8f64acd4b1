"""The operator's own REST calls: a thin aiohttp layer over the library's credentials, or the library.

Both clients use the same credentials (``modelops.kubeauth``, a kubeconfig with a token) and the
same emulator (tests/kubeemu, in a process of its own so that it never shares this one's GIL).
Each round makes ``--requests`` GETs of one ConfigMap, ``--concurrency`` at a time, from an
asyncio event loop as a Kopf handler would, with:

- ``aiohttp``: ``modelops.controller.kube.Kube`` (what the operator uses);
- ``library-threads``: the ``kubernetes`` package's synchronous ``CoreV1Api`` through
  ``asyncio.to_thread`` (it is synchronous; on the loop it would stop every other handler), with
  its typed models, then ``to_dict()`` for the operator's dict-based code;
- ``library-raw``: the same, with ``_preload_content=False`` and ``json.loads`` (no models).

Rounds alternate between the clients; reported per client: the median of rounds of requests per
second, and this process's CPU time per request (user + system). Also the import time of each
client in a fresh interpreter. Run from the repository root:

    .venv/bin/python bench/kubeclient/run.py --requests 2000 --concurrency 10 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests")]

from kubernetes import client as k8s  # noqa: E402

from modelops import kubeauth  # noqa: E402
from modelops.controller.kube import Kube  # noqa: E402

EMULATOR = """
import sys, time
sys.path.insert(0, {tests!r})
from kubeemu import Emulator
emu = Emulator().start()
emu.add_user("tok-bench", "bench", groups=["system:masters"])
print(emu.url, flush=True)
sys.stdin.read()
"""


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-c", EMULATOR.format(tests=str(REPO / "tests"))],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(call: Callable[[], Awaitable[Any]], requests: int, concurrency: int) -> None:
    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def import_seconds(statement: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    return float(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    emulator, url = start_emulator()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "kubeconfig"
            config.write_text(json.dumps({
                "apiVersion": "v1", "kind": "Config", "current-context": "b",
                "clusters": [{"name": "e", "cluster": {"server": url}}],
                "users": [{"name": "u", "user": {"token": "tok-bench"}}],
                "contexts": [{"name": "b", "context": {"cluster": "e", "user": "u", "namespace": "default"}}],
            }))  # fmt: skip
            creds = kubeauth.from_kubeconfig(str(config))
            results = asyncio.run(measure(creds, args))
    finally:
        emulator.stdin.close()  # type: ignore[union-attr]
        emulator.wait(timeout=30)
    imports = {
        "aiohttp": statistics.median(import_seconds("import aiohttp") for _ in range(3)),
        "kubernetes": statistics.median(import_seconds("import kubernetes.client") for _ in range(3)),
        "modelops.kubeauth": statistics.median(import_seconds("import modelops.kubeauth") for _ in range(3)),
    }
    report = {"args": vars(args), "clients": results, "import_seconds": imports}
    (Path(__file__).parent / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    base = results["aiohttp"]
    for name, row in results.items():
        speed = row["requests_per_second"] / base["requests_per_second"]
        cost = row["cpu_us_per_request"] / base["cpu_us_per_request"]
        print(f"{name:16s} {row['requests_per_second']:8.0f} req/s ({speed:.2f}x)"
              f"  {row['cpu_us_per_request']:6.0f} us CPU/request ({cost:.2f}x)")  # fmt: skip
    for name, seconds in imports.items():
        print(f"import {name}: {seconds * 1000:.0f} ms")


async def measure(creds: kubeauth.Credentials, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    ours = Kube(creds)
    api = k8s.CoreV1Api(k8s.ApiClient(creds.configuration))
    name = "bench"
    await ours.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"},
                       "data": {f"key{i}": "x" * 64 for i in range(20)}})  # fmt: skip

    async def aiohttp_get() -> Any:
        return await ours.get("v1", "ConfigMap", "default", name)

    async def typed_get() -> Any:
        found = await asyncio.to_thread(api.read_namespaced_config_map, name, "default")
        return found.to_dict()

    async def raw_get() -> Any:
        response = await asyncio.to_thread(api.read_namespaced_config_map, name, "default", _preload_content=False)
        return json.loads(response.data)

    clients = {"aiohttp": aiohttp_get, "library-threads": typed_get, "library-raw": raw_get}
    for call in clients.values():  # warm: connections open, first-use imports done
        await drive(call, 50, args.concurrency)
    rounds: dict[str, list[tuple[float, float]]] = {k: [] for k in clients}
    for _ in range(args.rounds):
        for label, call in clients.items():
            start, start_cpu = time.perf_counter(), cpu()
            await drive(call, args.requests, args.concurrency)
            rounds[label].append((time.perf_counter() - start, cpu() - start_cpu))
    await ours.close()
    api.api_client.close()
    return {
        label: {
            "requests_per_second": args.requests / statistics.median(w for w, _ in values),
            "cpu_us_per_request": statistics.median(c for _, c in values) / args.requests * 1e6,
        }
        for label, values in rounds.items()
    }


if __name__ == "__main__":
    main()
