"""``modelops serve``: verify, load and serve one model version.

Start-up order: fetch the artifact when ``--artifact-uri`` is given (into ``--cache-dir``, by
default the model dir), verify its sha256 against ``--sha256`` (or ``result.json``'s
``artifact.sha256``), and only then unpickle it. Any failure before serving is one line on stderr
and exit code 1; readiness never turns true. With ``--workers`` above 1, a supervisor process
holds the socket and runs the workers (:mod:`modelops.serve.supervisor`).
"""

from __future__ import annotations

import os

# A worker owns one core: BLAS thread pools would only fight the other workers for it. Set before
# numpy is first imported; an explicit setting in the environment wins.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

DEFAULT_MAX_BODY = 16 * 1024 * 1024


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelops serve", description="Serve a model with the Open Inference Protocol v2 REST API."
    )
    p.add_argument("--model-dir", required=True, type=Path, help="directory with result.json and the artifact")
    p.add_argument("--port", required=True, type=int, help="TCP port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default: one per usable core)")
    p.add_argument("--name", help="model name in the API (default: result.json's model)")
    p.add_argument("--version", default="1", help="model version in the API (default: 1)")
    p.add_argument("--sha256", help="trusted sha256 of the artifact (default: result.json's artifact.sha256)")
    p.add_argument("--artifact-uri", help="fetch the artifact from file://, pvc://, https:// or s3:// first")
    p.add_argument("--cache-dir", type=Path, help="where a fetched artifact is kept (default: the model dir)")
    p.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY, help="largest request body (413 above)")
    p.add_argument("--keepalive", type=float, default=75.0, help="seconds an idle connection stays open")
    p.add_argument("--graceful-timeout", type=float, default=30.0, help="seconds to drain on SIGTERM")
    # Internal: how the supervisor starts a worker.
    p.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-slot", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--metrics-dir", type=Path, help=argparse.SUPPRESS)
    return p


def _stop_before_serving(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _fail(message: str) -> int:
    print(f"modelops serve: {message}", file=sys.stderr, flush=True)
    return 1


def _resolve(args: argparse.Namespace) -> tuple[Path, str]:
    """Fetch what is remote, verify the artifact's hash; return (model dir, trusted sha256)."""
    from modelops.serve import artifact, predictor

    model_dir: Path = args.model_dir
    if args.artifact_uri:
        cache = args.cache_dir or model_dir
        if not (cache / "result.json").is_file():
            source = model_dir / "result.json"
            if source.is_file() and cache != model_dir:
                cache.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, cache / "result.json")
            else:
                artifact.fetch_text(artifact.sibling(args.artifact_uri, "result.json"), cache / "result.json")
        model_dir = cache
    contract = predictor.load_contract(model_dir)
    trusted = (args.sha256 or contract.sha256 or "").lower()
    if not trusted:
        raise artifact.ArtifactError("no sha256 to verify the artifact against: pass --sha256")
    if len(trusted) != 64 or any(c not in "0123456789abcdef" for c in trusted):
        raise artifact.ArtifactError(f"--sha256 {trusted!r} is not 64 hex digits")
    if args.artifact_uri:
        artifact.fetch(args.artifact_uri, model_dir / contract.artifact_path, trusted)
    return model_dir, trusted


class ListenError(Exception):
    """The address cannot be bound."""


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _worker(args: argparse.Namespace, model_dir: Path, trusted: str, listen: Callable[[], socket.socket]) -> int:
    import logging

    from modelops import __version__
    from modelops.serve import app, codec, metrics, predictor, server

    logging.basicConfig(level=logging.WARNING, format="modelops serve: %(levelname)s %(name)s: %(message)s")

    contract = predictor.load_contract(model_dir)
    model = predictor.load(model_dir, contract, trusted)
    plan = codec.make_plan(contract)
    name = args.name or contract.model
    layout = metrics.build_layout(
        model=name,
        version=args.version,
        classes=model.class_labels,
        prediction_bounds=model.prediction_bounds,
        numeric=[(s.name, plan.slots[s.name][1], s.interior) for s in contract.numeric_stats],
        categorical=[(s.name, plan.slots[s.name][1], s.categories) for s in contract.categorical_stats],
    )
    store = metrics.Store(layout, args.metrics_dir, args.worker_slot)
    application = app.App(model, plan, store, name=name, version=args.version, server_version=__version__)
    # Listen only now (a single worker binds here): a probe never waits on a model still loading.
    sock = listen()
    host, port = sock.getsockname()[:2]
    print(
        f"modelops serve: model {name!r} version {args.version!r} on http://{host}:{port} "
        f"(worker {args.worker_slot}, pid {os.getpid()}, predictor path {model.path})",
        file=sys.stderr,
        flush=True,
    )
    server.run(
        application, sock, max_body=args.max_body_bytes, keepalive=args.keepalive,
        graceful_timeout=args.graceful_timeout,
    )  # fmt: skip
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``modelops serve``."""
    from modelops.serve import artifact, predictor, supervisor

    args = _parser().parse_args(argv)
    # Until the server installs its own handlers, SIGTERM/SIGINT mean "stop before serving": exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_before_serving)
    if args.max_body_bytes <= 0:
        return _fail("--max-body-bytes must be positive")
    if args.worker_fd is not None:
        supervisor.unblock_signals()
        fd = args.worker_fd
        try:
            return _worker(args, args.model_dir, (args.sha256 or "").lower(), lambda: socket.socket(fileno=fd))
        except (artifact.ArtifactError, predictor.LoadError) as exc:
            return _fail(str(exc))
    try:
        model_dir, trusted = _resolve(args)
        workers = args.workers or supervisor.default_workers()
        if workers == 1:
            return _worker(args, model_dir, trusted, lambda: _listen(args.host, args.port))
        # Verify here too, so a tampered artifact fails once, before any worker starts.
        contract = predictor.load_contract(model_dir)
        artifact.verify(model_dir / contract.artifact_path, trusted)
        sock = _listen(args.host, args.port)
    except (artifact.ArtifactError, predictor.LoadError, ListenError) as exc:
        return _fail(str(exc))
    worker_args = [
        "--model-dir", str(model_dir), "--port", str(args.port), "--host", args.host, "--version", args.version,
        "--sha256", trusted, "--max-body-bytes", str(args.max_body_bytes), "--keepalive", str(args.keepalive),
        "--graceful-timeout", str(args.graceful_timeout),
    ]  # fmt: skip
    if args.name:
        worker_args += ["--name", args.name]
    metrics_dir = Path(tempfile.mkdtemp(prefix="modelops-serve-metrics-"))
    try:
        return supervisor.Supervisor(worker_args, sock, workers, metrics_dir, args.graceful_timeout).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
