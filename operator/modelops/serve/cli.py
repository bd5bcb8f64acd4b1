"""``modelops serve``: verify, load and serve one model version.

Start-up order: fetch the artifact when ``--artifact-uri`` is given (into ``--cache-dir``, by
default the model dir), verify its sha256 against ``--sha256`` (or ``result.json``'s
``artifact.sha256``), and only then load it: a skops artifact with trusted types only, a joblib
pickle only with ``--allow-pickle`` (:mod:`modelops.serve.loading`). Any failure before serving is
one line on stderr and exit code 1; readiness never turns true. With ``--workers`` above 1, a
supervisor process holds the socket and runs the workers (:mod:`modelops.serve.supervisor`).

``--feedback-keys DIR`` turns feedback on: prediction ids in every answer and the ``/feedback``
route (:mod:`modelops.serve.feedback`, ``docs/quality.md``); a directory without a usable key stops
the server before it serves.
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
from typing import Any, NoReturn  # noqa: E402

from modelops.cli import number as _number  # noqa: E402

DEFAULT_MAX_BODY = 16 * 1024 * 1024
DEFAULT_MAX_HEADER = 32 * 1024
DEFAULT_MAX_URL = 8 * 1024
DEFAULT_MAX_CONNECTIONS = 1024
DEFAULT_FEEDBACK_TTL = 7 * 24 * 3600
DEFAULT_DEDUP_ENTRIES = 1 << 20
#: Exit code of a usage error (as argparse's own): a bad flag, before anything is loaded.
EXIT_USAGE = 2
#: The options every worker gets from the supervisor as they were given.
_FORWARDED = (
    "max_body_bytes", "max_header_bytes", "max_url_bytes", "max_connections", "keepalive", "header_timeout",
    "body_timeout", "send_timeout", "graceful_timeout", "explain_max_rows", "feedback_scope", "feedback_ttl",
    "feedback_dedup_entries",
)  # fmt: skip


class _UsageError(Exception):
    """argparse's complaint, raised instead of printing the usage and exiting."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


#: (flag, type, default, help) of the limits; ``[status]`` is what a client past one gets.
_LIMITS: tuple[tuple[str, Callable[[str], Any], float, str], ...] = (
    ("--max-body-bytes", _number(int, 1), DEFAULT_MAX_BODY, "largest request body [413]"),
    ("--max-header-bytes", _number(int, 256), DEFAULT_MAX_HEADER, "largest request head (line and headers) [431]"),
    ("--max-url-bytes", _number(int, 16), DEFAULT_MAX_URL, "longest request target, within the head [414]"),
    ("--max-connections", _number(int, 1), DEFAULT_MAX_CONNECTIONS,
     "open connections; idle and slow ones are reclaimed first [503]"),
    ("--header-timeout", _number(float, 0.001), 10.0, "seconds for a request head, from connect or first byte [408]"),
    ("--body-timeout", _number(float, 0.001), 60.0, "seconds for a request body, from the end of its head [408]"),
    ("--send-timeout", _number(float, 0.001), 60.0, "seconds a response may wait on a client that does not read it"),
    ("--keepalive", _number(float, 0.001), 75.0, "seconds an idle connection stays open"),
)  # fmt: skip


def _parser() -> _Parser:
    p = _Parser(
        prog="modelops serve",
        description="Serve a model with the Open Inference Protocol v2 REST API.",
        epilog="Limits and timeouts are per worker; docs/serve-limits.md explains each. "
        "Exit status: 0 after a clean shutdown, 1 when the model cannot be served, 2 for a usage error.",
    )
    p.add_argument(
        "--model-dir", required=True, type=Path, help="directory with result.json and the artifact (required)"
    )
    p.add_argument(
        "--port",
        required=True,
        type=_number(int, 0, 65535),
        help="TCP port to listen on, 0 for any free one (required)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    workers = _number(int, 1, 1024, hint=" (leave --workers out for one per usable core)")
    p.add_argument("--workers", type=workers, help="worker processes (default: one per usable core)")
    p.add_argument("--name", help="model name in the API (default: result.json's model)")
    p.add_argument("--version", default="1", help="model version in the API (default: %(default)s)")
    p.add_argument("--sha256", help="trusted sha256 of the artifact (default: result.json's artifact.sha256)")
    p.add_argument("--artifact-uri", help="fetch the artifact from file://, pvc://, https:// or s3:// (default: none)")
    p.add_argument("--cache-dir", type=Path, help="where a fetched artifact is kept (default: the model dir)")
    p.add_argument(
        "--allow-pickle", action="store_true",
        help="load a joblib (pickle) artifact, which runs code from the file (default: off, only skops artifacts load)",
    )  # fmt: skip
    group = p.add_argument_group("limits, per worker")
    for flag, kind, default, text in _LIMITS:
        group.add_argument(flag, type=kind, default=default, help=text + " (default: %(default)s)")
    fb = p.add_argument_group("feedback (docs/quality.md)")
    fb.add_argument(
        "--feedback-keys", type=Path, metavar="DIR",
        help="directory of feedback keys (key-<generation> files, and 'current'): turns on prediction ids and "
        "POST /v2/models/NAME/feedback (default: off)",
    )  # fmt: skip
    fb.add_argument(
        "--feedback-scope", default="", help="what ids are bound to besides the model, e.g. <namespace>/<deployment> "
        "(default: nothing)",
    )  # fmt: skip
    fb.add_argument(
        "--feedback-ttl", type=_number(int, 1, 2**31), default=DEFAULT_FEEDBACK_TTL,
        help="seconds an id is accepted after it was issued (default: %(default)s, seven days)",
    )  # fmt: skip
    fb.add_argument(
        "--feedback-dedup-entries", type=_number(int, 8, 2**31), default=DEFAULT_DEDUP_ENTRIES,
        help="labels a pod remembers, so that a repeat counts once; 12 bytes each (default: %(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--explain-max-rows",
        type=_number(int, 0),
        default=32,  # explain.DEFAULT_MAX_ROWS, not imported here: the flags parse before numpy loads
        help="most rows one /v2/models/NAME/explain request may hold; 0 turns explanations off (default: %(default)s)",
    )
    p.add_argument(
        "--graceful-timeout",
        type=_number(float, 0),
        default=30.0,
        help="seconds to drain on SIGTERM (default: %(default)s)",
    )
    # Internal: how the supervisor starts a worker.
    p.add_argument("--worker-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--worker-slot", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--metrics-dir", type=Path, help=argparse.SUPPRESS)
    return p


def _parse(argv: list[str]) -> argparse.Namespace:
    args = _parser().parse_args(argv)
    if args.max_url_bytes > args.max_header_bytes:
        raise _UsageError(
            f"--max-url-bytes {args.max_url_bytes} is over --max-header-bytes {args.max_header_bytes}: "
            "the request target is part of the head"
        )
    return args


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
        # create_server's wording repeats the address ("(while attempting to bind on address …)").
        reason = (exc.strerror or str(exc)).split(" (while attempting", 1)[0]
        raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None
    sock.set_inheritable(True)
    return sock


def _worker(args: argparse.Namespace, model_dir: Path, trusted: str, listen: Callable[[], socket.socket]) -> int:
    import logging

    from modelops import __version__
    from modelops.serve import app, feedback, predictor, server

    logging.basicConfig(level=logging.WARNING, format="modelops serve: %(levelname)s %(name)s: %(message)s")

    contract = predictor.load_contract(model_dir)
    model = predictor.load(model_dir, contract, trusted, allow_pickle=args.allow_pickle)
    name = args.name or contract.model
    settings = None
    if args.feedback_keys is not None:
        settings = feedback.Settings(
            args.feedback_keys, scope=args.feedback_scope, ttl=args.feedback_ttl,
            dedup_entries=args.feedback_dedup_entries,
        )  # fmt: skip
    application = app.build(
        model, name=name, version=args.version, server_version=__version__, metrics_dir=args.metrics_dir,
        slot=args.worker_slot, explain_max_rows=args.explain_max_rows, feedback_settings=settings,
    )  # fmt: skip
    # Listen only now (a single worker binds here): a probe never waits on a model still loading.
    sock = listen()
    host, port = sock.getsockname()[:2]
    print(
        f"modelops serve: model {name!r} version {args.version!r} on http://{host}:{port} "
        f"(worker {args.worker_slot}, pid {os.getpid()}, predictor path {model.path})",
        file=sys.stderr,
        flush=True,
    )
    limits = server.Limits(
        max_body=args.max_body_bytes, max_header=args.max_header_bytes, max_url=args.max_url_bytes,
        max_connections=args.max_connections, keepalive=args.keepalive, header_timeout=args.header_timeout,
        body_timeout=args.body_timeout, send_timeout=args.send_timeout,
    )  # fmt: skip
    server.run(application, sock, limits=limits, graceful_timeout=args.graceful_timeout)
    return 0


def main(argv: list[str]) -> int:
    """Entry point of ``modelops serve``."""
    try:
        args = _parse(argv)
    except _UsageError as exc:
        print(f"modelops serve: {exc}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    from modelops.serve import artifact, keys, loading, predictor, supervisor, tokens

    # Until the server installs its own handlers, SIGTERM/SIGINT mean "stop before serving": exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_before_serving)
    if args.worker_fd is not None:
        supervisor.unblock_signals()
        fd = args.worker_fd
        try:
            return _worker(args, args.model_dir, (args.sha256 or "").lower(), lambda: socket.socket(fileno=fd))
        except (artifact.ArtifactError, predictor.LoadError, keys.KeysError) as exc:
            return _fail(str(exc))
        except tokens.UnsignableError as exc:
            return _fail(f"feedback: {exc}")
    try:
        if args.feedback_keys is not None:
            keys.read(args.feedback_keys)  # a directory without a key fails once, before any loading
        model_dir, trusted = _resolve(args)
        workers = args.workers or supervisor.default_workers()
        if workers == 1:
            return _worker(args, model_dir, trusted, lambda: _listen(args.host, args.port))
        # Verify here too, so a tampered or untrusted artifact fails once, before any worker starts.
        contract = predictor.load_contract(model_dir)
        loading.audit_file(model_dir / contract.artifact_path, trusted, contract.artifact_format, args.allow_pickle)
        sock = _listen(args.host, args.port)
    except (artifact.ArtifactError, predictor.LoadError, ListenError, keys.KeysError) as exc:
        return _fail(str(exc))
    except tokens.UnsignableError as exc:
        return _fail(f"feedback: {exc}")
    worker_args = [
        "--model-dir", str(model_dir), "--port", str(args.port), "--host", args.host, "--version", args.version,
        "--sha256", trusted,
    ]  # fmt: skip
    for option in _FORWARDED:
        worker_args += ["--" + option.replace("_", "-"), str(getattr(args, option))]
    if args.name:
        worker_args += ["--name", args.name]
    if args.allow_pickle:
        worker_args.append("--allow-pickle")
    if args.feedback_keys is not None:
        worker_args += ["--feedback-keys", str(args.feedback_keys)]
    metrics_dir = Path(tempfile.mkdtemp(prefix="modelops-serve-metrics-"))
    try:
        return supervisor.Supervisor(worker_args, sock, workers, metrics_dir, args.graceful_timeout).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
