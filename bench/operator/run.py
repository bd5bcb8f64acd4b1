"""The operator at scale: the real `modelops operator` process against the emulator, beside a floor.

Each operator gets a fresh emulated API server (bench/operator/apiserver.py, a process of its
own) and runs as a process of its own with default intervals; this driver, a third process, makes
the objects and watches for the children by polling the API as an administrator, whose requests
are not counted. Per operator, in one run:

1. ``--runs`` TrainingRuns created at once (``--concurrency`` requests in flight) until every
   run has its Job: the time from the first create to the last Job, and the operator's requests;
2. (modelops only; the floor knows no other kind) one registered ModelVersion and
   ``--deployments`` ModelDeployments pinned to it, until each has its children (the stable and
   canary Deployments and the Service); then the driver marks every Deployment available, as the
   deployment controller would, so the deployments are serving, not waiting, at rest;
3. ``--rest`` minutes at rest: the operator's requests per minute, by verb and resource;
4. apply→child latency at rest, one object at a time (``--samples`` of each): a TrainingRun to
   its Job, a ModelDeployment to its stable Deployment (polled every 5 ms);
5. the operator's peak RSS (``VmHWM`` in /proc/PID/status) before it is stopped.

The floor (bench/operator/floor.py) is a Kopf operator that only creates one Job per TrainingRun.
Results go to bench/operator/results.json (``--out``). From the repository root:

    .venv/bin/python bench/operator/run.py                 # 1,000 runs, 300 deployments, 10 min rest
    .venv/bin/python bench/operator/run.py --quick         # the same with a 1-minute rest

``--modelops-source DIR`` runs another tree's operator package (e.g. ``git archive`` of an older
commit's ``operator/``) with this tree's bench, to compare before and after a change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import aiohttp
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NAMESPACE = "bench"
API = "modelops.io/v1alpha1"
EXAMPLES = REPO / "manifests" / "examples"


class ApiServer:
    """bench/operator/apiserver.py as a child process, and its command channel."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "apiserver.py"), NAMESPACE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        assert self.process.stdin is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError(f"the emulator did not start: {self.url!r}")

    def ask(self, command: str) -> Any:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def mark(self) -> int:
        return int(self.ask("count"))

    def since(self, mark: int) -> dict[str, Any]:
        return dict(self.ask(f"audit {mark}"))

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class OperatorProcess:
    """An operator as a child process, its log in a file."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle: IO[bytes] = log.open("wb")
        self.process = subprocess.Popen(command, env=env, stdout=self.handle, stderr=subprocess.STDOUT)

    def memory(self) -> dict[str, float]:
        """Peak and current resident set, MiB."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                fields[key] = int(value.split()[0]) / 1024
        return {"peak_rss_mib": fields["VmHWM"], "rss_mib": fields["VmRSS"]}

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()
        return int(self.process.returncode)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / name).read_text()))


def training_run(name: str) -> dict[str, Any]:
    run = example("01-trainingrun.yaml")
    run["metadata"] = {"name": name, "namespace": NAMESPACE}
    return run


def model_version() -> dict[str, Any]:
    version = example("02-modelversion.yaml")
    version["metadata"]["namespace"] = NAMESPACE
    return version


def model_deployment(name: str) -> dict[str, Any]:
    deployment = example("03-modeldeployment.yaml")
    deployment["metadata"] = {"name": name, "namespace": NAMESPACE}
    spec = deployment["spec"]
    del spec["track"]
    del spec["analysis"]["prometheus"]  # the operator's MODELOPS_PROMETHEUS_URL (a closed port), not a DNS name
    spec["modelVersion"] = model_version()["metadata"]["name"]
    return deployment


def available_status(deployment: dict[str, Any]) -> dict[str, Any]:
    """What the deployment controller writes once every replica is available."""
    replicas = deployment["spec"].get("replicas")
    replicas = 1 if replicas is None else int(replicas)
    return {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas, "unavailableReplicas": 0,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability."},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{deployment["metadata"]["name"]}" has successfully progressed.'},
        ],
    }  # fmt: skip


class Driver:
    """The bench's own client: an administrator (no token), whose requests the counts leave out."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))

    async def close(self) -> None:
        await self.session.close()

    def path(self, api_version: str, plural: str, name: str | None = None) -> str:
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        return f"{self.url}{base}/namespaces/{NAMESPACE}/{plural}" + (f"/{name}" if name else "")

    async def create(self, plural: str, body: dict[str, Any]) -> None:
        async with self.session.post(self.path(body["apiVersion"], plural), json=body) as response:
            if response.status != 201:
                raise RuntimeError(f"creating {plural}: {response.status} {await response.text()}")

    async def names(self, api_version: str, plural: str) -> set[str]:
        async with self.session.get(self.path(api_version, plural)) as response:
            response.raise_for_status()
            return {item["metadata"]["name"] for item in (await response.json())["items"]}

    async def items(self, api_version: str, plural: str) -> list[dict[str, Any]]:
        async with self.session.get(self.path(api_version, plural)) as response:
            response.raise_for_status()
            return list((await response.json())["items"])

    async def exists(self, api_version: str, plural: str, name: str) -> bool:
        async with self.session.get(self.path(api_version, plural, name)) as response:
            return response.status == 200

    async def patch_status(self, api_version: str, plural: str, name: str, status: dict[str, Any]) -> None:
        headers = {"Content-Type": "application/merge-patch+json"}
        url = self.path(api_version, plural, name) + "/status"
        async with self.session.patch(url, data=json.dumps({"status": status}), headers=headers) as response:
            response.raise_for_status()


async def gather_limited(calls: list[Callable[[], Awaitable[None]]], concurrency: int) -> None:
    pending = iter(calls)

    async def worker() -> None:
        for call in pending:
            await call()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def until(check: Callable[[], Awaitable[bool]], limit: float, what: str, interval: float = 0.25) -> float:
    """Poll ``check`` until true; the monotonic time it first was."""
    deadline = time.monotonic() + limit
    while True:
        if await check():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {limit:.0f}s waiting for {what}")
        await asyncio.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def latency_summary(samples: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in samples]
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p99_ms": round(percentile(ms, 0.99), 1),
            "max_ms": round(max(ms), 1), "samples_ms": [round(x, 1) for x in ms]}  # fmt: skip


async def converge_runs(driver: Driver, server: ApiServer, args: argparse.Namespace, jobs: set[str]) -> dict[str, Any]:
    mark = server.mark()
    started = time.monotonic()
    names = [f"run-{i:04d}" for i in range(args.runs)]
    await gather_limited([lambda n=n: driver.create("trainingruns", training_run(n)) for n in names], args.concurrency)
    created = time.monotonic()

    async def all_jobs() -> bool:
        return len((await driver.names("batch/v1", "jobs")) - jobs) >= args.runs

    done = await until(all_jobs, args.timeout, f"{args.runs} Jobs")
    counts = server.since(mark)
    return {"objects": args.runs, "create_seconds": round(created - started, 2),
            "converge_seconds": round(done - started, 2), "requests": counts["total"],
            "requests_per_object": round(counts["total"] / args.runs, 2), "by": counts["by"]}  # fmt: skip


async def converge_deployments(driver: Driver, server: ApiServer, args: argparse.Namespace) -> dict[str, Any]:
    await driver.create("modelversions", model_version())
    mark = server.mark()
    started = time.monotonic()
    names = [f"md-{i:04d}" for i in range(args.deployments)]
    await gather_limited(
        [lambda n=n: driver.create("modeldeployments", model_deployment(n)) for n in names], args.concurrency
    )
    created = time.monotonic()

    async def all_children() -> bool:
        deployments = await driver.names("apps/v1", "deployments")
        services = await driver.names("v1", "services")
        return all(f"{n}-stable" in deployments and f"{n}-canary" in deployments and n in services for n in names)

    done = await until(all_children, args.timeout, f"the children of {args.deployments} ModelDeployments")
    counts = server.since(mark)
    result = {"objects": args.deployments, "create_seconds": round(created - started, 2),
              "converge_seconds": round(done - started, 2), "requests": counts["total"],
              "requests_per_object": round(counts["total"] / args.deployments, 2), "by": counts["by"]}  # fmt: skip
    # The deployment controller's part: every Deployment available, so the deployments serve at rest.
    mark = server.mark()
    started = time.monotonic()
    deployments = await driver.items("apps/v1", "deployments")
    await gather_limited(
        [lambda d=d: driver.patch_status("apps/v1", "deployments", d["metadata"]["name"], available_status(d))
         for d in deployments], args.concurrency,
    )  # fmt: skip

    async def all_ready() -> bool:
        ready = 0
        for md in await driver.items(API, "modeldeployments"):
            conditions = (md.get("status") or {}).get("conditions") or []
            ready += any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        return ready >= args.deployments

    done = await until(all_ready, args.timeout, f"{args.deployments} ModelDeployments Ready", interval=1.0)
    counts = server.since(mark)
    per_object = round(counts["total"] / args.deployments, 2)
    result["ready"] = {"seconds": round(done - started, 2), "requests": counts["total"],
                       "requests_per_object": per_object, "by": counts["by"]}  # fmt: skip
    return result


async def rest(server: ApiServer, args: argparse.Namespace, objects: int) -> dict[str, Any]:
    """The operator's requests while nothing changes, per window of ``--window`` seconds."""
    windows: list[int] = []
    mark = first = server.mark()
    started = time.monotonic()
    while time.monotonic() - started < args.rest * 60 - 1e-3:
        await asyncio.sleep(min(args.window, args.rest * 60 - (time.monotonic() - started)))
        now = server.mark()
        windows.append(server.since(mark)["total"])
        mark = now
    elapsed = time.monotonic() - started
    counts = server.since(first)
    per_minute = counts["total"] / (elapsed / 60)
    return {"minutes": round(elapsed / 60, 2), "objects": objects, "requests": counts["total"],
            "requests_per_minute": round(per_minute, 1),
            "requests_per_minute_per_object": round(per_minute / max(objects, 1), 3),
            "per_window": windows, "window_seconds": args.window, "by": counts["by"]}  # fmt: skip


async def latencies(driver: Driver, args: argparse.Namespace, modelops: bool) -> dict[str, Any]:
    async def one(plural: str, body: dict[str, Any], child: tuple[str, str, str]) -> float:
        started = time.monotonic()
        await driver.create(plural, body)
        return await until(lambda: driver.exists(*child), 60, f"{child}", interval=0.005) - started

    runs = []
    for i in range(args.samples):
        name = f"lat-{i:03d}"
        runs.append(await one("trainingruns", training_run(name), ("batch/v1", "jobs", f"{name}-train")))
    result = {"trainingrun_to_job": latency_summary(runs)}
    if modelops:
        deployments = []
        for i in range(args.samples):
            name = f"lat-{i:03d}"
            deployments.append(await one("modeldeployments", model_deployment(name),
                                         ("apps/v1", "deployments", f"{name}-stable")))  # fmt: skip
        result["modeldeployment_to_deployment"] = latency_summary(deployments)
    return result


def operator_command(which: str, tmp: Path) -> list[str]:
    liveness = f"http://127.0.0.1:{_free_port()}/healthz"
    if which == "floor":
        return [sys.executable, "-m", "kopf", "run", "--standalone", "--namespace", NAMESPACE,
                "--liveness", liveness, str(HERE / "floor.py")]  # fmt: skip
    return [sys.executable, "-m", "modelops", "operator", "--standalone", "--namespace", NAMESPACE,
            "--liveness", liveness, "--metrics-port", str(_free_port()), "--webhook-port", "0"]  # fmt: skip


async def bench_one(which: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    server = ApiServer()
    kubeconfig = tmp / f"kubeconfig-{which}"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "bench",
        "clusters": [{"name": "emu", "cluster": {"server": server.url}}],
        "users": [{"name": "operator", "user": {"token": "tok-operator"}}],
        "contexts": [{"name": "bench", "context": {"cluster": "emu", "user": "operator", "namespace": NAMESPACE}}],
    }))  # fmt: skip
    source = args.modelops_source if which == "modelops" else REPO / "operator"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PYTHONPATH": str(source),
           "MODELOPS_PROMETHEUS_URL": f"http://127.0.0.1:{_free_port()}"}  # fmt: skip
    for key in [k for k in env if k.startswith("MODELOPS_") and k != "MODELOPS_PROMETHEUS_URL"]:
        del env[key]  # the operator's default intervals
    log = tmp / f"{which}.log"
    operator = OperatorProcess(operator_command(which, tmp), env, log)
    driver = Driver(server.url)
    result: dict[str, Any] = {"operator": which}
    try:
        started = time.monotonic()
        # Ready: it has listed the runs (its first requests) and the emulator answered.
        await until(lambda: asyncio.sleep(0, result=server.since(0)["total"] > 0), 120, f"{which} to start")
        await asyncio.sleep(2)  # its watches open
        result["startup_seconds"] = round(time.monotonic() - started, 2)
        print(f"[{which}] started; {args.runs} TrainingRuns", flush=True)
        result["trainingruns"] = await converge_runs(driver, server, args, set())
        print(f"[{which}] runs converged in {result['trainingruns']['converge_seconds']} s", flush=True)
        if which == "modelops" and args.deployments:
            result["modeldeployments"] = await converge_deployments(driver, server, args)
            print(f"[{which}] deployments converged in {result['modeldeployments']['converge_seconds']} s", flush=True)
        objects = args.runs + (args.deployments if which == "modelops" else 0)
        print(f"[{which}] at rest for {args.rest} min", flush=True)
        result["rest"] = await rest(server, args, objects)
        print(f"[{which}] {result['rest']['requests_per_minute']} requests/min at rest; latencies", flush=True)
        # The deployments' latency needs the version the deployment phase registers.
        result["latency"] = await latencies(driver, args, which == "modelops" and args.deployments > 0)
        result["memory"] = operator.memory()
        if operator.process.poll() is not None:
            raise RuntimeError(f"{which} exited early; log:\n{log.read_text()[-3000:]}")
    finally:
        await driver.close()
        result["exit_code"] = operator.stop()
        server.stop()
    output = log.read_text(errors="replace")
    result["log_tracebacks"] = output.count("Traceback")
    result["log_errors"] = sum(1 for line in output.splitlines() if "[ERROR" in line or " ERROR " in line)
    return result


def summary(report: dict[str, Any]) -> dict[str, Any]:
    ours, floor = report["modelops"], report["floor"]
    converge = ours["trainingruns"]["converge_seconds"]
    return {
        "trainingruns_converge_seconds": converge,
        "floor_converge_seconds": floor["trainingruns"]["converge_seconds"],
        "converge_ratio_to_floor": round(converge / floor["trainingruns"]["converge_seconds"], 2),
        "requests_per_run_ratio_to_floor": round(
            ours["trainingruns"]["requests_per_object"] / max(floor["trainingruns"]["requests_per_object"], 1e-9), 2
        ),
        "peak_rss_mib": ours["memory"]["peak_rss_mib"],
        "floor_peak_rss_mib": floor["memory"]["peak_rss_mib"],
        "rest_requests_per_minute": ours["rest"]["requests_per_minute"],
        "floor_rest_requests_per_minute": floor["rest"]["requests_per_minute"],
        "goals": {
            "converge_within_60s": converge <= 60,
            "converge_within_1_5x_floor": converge <= 1.5 * floor["trainingruns"]["converge_seconds"],
            "rss_at_most_300mb": ours["memory"]["peak_rss_mib"] * 1.048576 <= 300,
        },
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    settings = {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}
    report: dict[str, Any] = {"args": settings, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
        for which in args.operators:
            report[which] = await bench_one(which, args, Path(tmp))
    if "modelops" in report and "floor" in report:
        report["summary"] = summary(report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--deployments", type=int, default=300)
    parser.add_argument("--rest", type=float, default=10.0, help="minutes at rest (default 10)")
    parser.add_argument("--quick", action="store_true", help="a 1-minute rest (unless --rest is given)")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per window of the rest counts")
    parser.add_argument("--samples", type=int, default=30, help="objects per latency measurement")
    parser.add_argument("--concurrency", type=int, default=32, help="creates in flight")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for a phase")
    parser.add_argument("--operators", nargs="+", default=["floor", "modelops"], choices=["floor", "modelops"])
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--modelops-source", type=Path, default=REPO / "operator",
                        help="the operator package's source tree to run (another commit's, to compare)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.quick and "--rest" not in (argv if argv is not None else sys.argv[1:]):
        args.rest = 1.0
    report = asyncio.run(main_async(args))
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report.get("summary", {}), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
