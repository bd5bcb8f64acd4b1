"""``modelops operator``: run the Kopf operator with the project's settings.

Peering lets only one of several replicas act; a liveness endpoint and the operator's own
metrics are served, and the admission webhooks over HTTPS (every replica serves those, active
or not). The settings themselves are in ``modelops.controller.settings``.

Before Kopf starts, what would otherwise fail inside it with a traceback is checked and
reported as one line on stderr with exit status 1: no credentials (no kubeconfig, not in a
pod) or a malformed kubeconfig, and a port of the liveness, metrics or webhook server that is
taken. Bad usage is exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import errno
import getpass
import logging
import os
import random
import socket
import sys
import urllib.parse
from collections.abc import Sequence

import aiohttp
import kopf

from modelops import kubeauth
from modelops.cli import ArgumentParser, number
from modelops.controller import audit, common, metrics, runtime, webhooks
from modelops.controller.kube import Kube, KubeError
from modelops.controller.settings import PEERING_NAME
from modelops.logic import policy as policies

# How long a starting operator waits for the API server to answer at all before giving up with one
# line (the kubelet restarts it); Kopf itself would retry for minutes, logging each failure.
API_WAIT_SECONDS = 30.0


LIVENESS = "http://0.0.0.0:8080/healthz"
METRICS_PORT = 8081


def _parser() -> ArgumentParser:
    parser = ArgumentParser(prog="modelops operator", description="Run the modelops Kopf operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed); default: all namespaces",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (default)")
    parser.add_argument(
        "--kubeconfig",
        help="that kubeconfig file alone (default: $KUBECONFIG's files merged, else the pod's service account, "
        "else ~/.kube/config)",
    )
    parser.add_argument("--context", help="a kubeconfig context other than the current one")
    parser.add_argument(
        "--api-wait", type=number(float, 0), default=API_WAIT_SECONDS, metavar="SECONDS",
        help="at start, how long to wait for the API server to answer before exiting with an error "
        f"(default: {API_WAIT_SECONDS:g})",
    )  # fmt: skip
    parser.add_argument("--standalone", action="store_true", help="do not coordinate with other replicas (no peering)")
    parser.add_argument(
        "--peering",
        default=os.environ.get("MODELOPS_PEERING", PEERING_NAME),
        help=f"name of the peering object replicas coordinate through (default: $MODELOPS_PEERING, else "
        f"{PEERING_NAME})",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority; the highest acts, the others wait (default: random)",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("MODELOPS_LIVENESS", LIVENESS),
        help=f"liveness endpoint URL to serve, empty to disable (default: $MODELOPS_LIVENESS, else {LIVENESS})",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=os.environ.get("MODELOPS_METRICS_PORT", str(METRICS_PORT)),  # a string default goes through type=int
        help=f"port of the operator's own /metrics, 0 to disable (default: $MODELOPS_METRICS_PORT, else "
        f"{METRICS_PORT})",
    )
    parser.add_argument(
        "--policy",
        default=os.environ.get("MODELOPS_POLICY_FILE") or None,
        help="governance policy file (YAML, see docs/governance.md) (default: $MODELOPS_POLICY_FILE, else the "
        "built-in defaults)",
    )
    parser.add_argument(
        "--webhook-port",
        type=int,
        default=os.environ.get("MODELOPS_WEBHOOK_PORT", str(webhooks.WebhookOptions.port)),
        help="HTTPS port of the admission webhooks, 0 to disable "
        f"(default: $MODELOPS_WEBHOOK_PORT, else {webhooks.WebhookOptions.port})",
    )
    parser.add_argument(
        "--webhook-cert-dir",
        default=os.environ.get("MODELOPS_WEBHOOK_CERT_DIR", webhooks.WebhookOptions.cert_dir),
        help="directory with the webhook server's tls.crt and tls.key "
        f"(default: $MODELOPS_WEBHOOK_CERT_DIR, else {webhooks.WebhookOptions.cert_dir})",
    )
    parser.add_argument(
        "--webhook-host",
        default=os.environ.get("MODELOPS_WEBHOOK_HOST", webhooks.WebhookOptions.host),
        help="address the webhook server listens on "
        f"(default: $MODELOPS_WEBHOOK_HOST, else {webhooks.WebhookOptions.host})",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging (default: info)")
    return parser


class StartupError(Exception):
    """Something the operator cannot start without; the message is one line naming it."""


def _check_port(host: str, port: int, what: str, option: str, off: str = "0") -> None:
    """StartupError naming the port when it cannot be bound (checked, then released for the server)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # The servers set SO_REUSEADDR too: a port in TIME_WAIT is free for them, and so for this check.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            reason = "is already in use" if error.errno == errno.EADDRINUSE else f"cannot be bound: {error.strerror}"
            raise StartupError(f"the {what} port {host}:{port} {reason} (set {option}; {off} disables it)") from None


def _liveness_address(url: str) -> tuple[str, int]:
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if parsed.scheme != "http" or not parsed.hostname or port is None:
        raise StartupError(f"--liveness {url!r} is not an http://HOST:PORT/PATH URL")
    return parsed.hostname, port


def _preflight(args: argparse.Namespace, webhook: webhooks.WebhookOptions | None) -> None:
    """Fail before Kopf starts, with one line, on a port that Kopf would only log a traceback about."""
    if args.liveness:
        host, port = _liveness_address(args.liveness)
        _check_port(host, port, "liveness", "--liveness or MODELOPS_LIVENESS", off="''")
    if args.metrics_port:
        _check_port("0.0.0.0", args.metrics_port, "metrics", "--metrics-port or MODELOPS_METRICS_PORT")
    if webhook is not None:
        _check_port(webhook.host, webhook.port, "webhook", "--webhook-port or MODELOPS_WEBHOOK_PORT")


async def _reach_api(creds: kubeauth.Credentials, wait: float = API_WAIT_SECONDS) -> str | None:
    """None once the API server answers anything (even a refusal: that is Kopf's to report); else why not."""
    client = Kube(creds, timeout=10)
    deadline = asyncio.get_running_loop().time() + wait
    delay = 0.5
    try:
        while True:
            try:
                await client.call("GET", "/version")
                return None
            except KubeError:
                return None
            except (aiohttp.ClientError, TimeoutError, OSError) as error:
                problem = " ".join(str(error).split()) or type(error).__name__
            if asyncio.get_running_loop().time() + delay > deadline:
                return f"cannot reach the API server at {client.connection.server} ({creds.source}): {problem}"
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    finally:
        await client.close()


def _fail(message: str) -> int:
    print(f"modelops operator: error: {message}", file=sys.stderr)
    return 1


def identity() -> str:
    """This replica's name among its peers: the pod's name when it is known (the chart sets
    POD_NAME; Kopf's own POD_ID wins), else ``user@host/time/random`` as Kopf makes it.

    Kopf's own guess asks ``getpass.getuser()``, which fails for a user id that /etc/passwd does
    not know — what OpenShift's restricted policy assigns — so the user falls back to ``uid<N>``.
    """
    pod = os.environ.get("POD_ID") or os.environ.get("POD_NAME")
    if pod:
        return pod
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = f"uid{os.getuid()}"
    now = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")
    suffix = "".join(random.choices("abcdefhijklmnopqrstuvwxyz0123456789", k=3))
    return f"{user}@{socket.gethostname()}/{now}/{suffix}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help (0), or bad usage already printed by argparse (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    for name in ("metrics_port", "webhook_port"):
        if not 0 <= getattr(args, name) <= 65535:
            option = "--" + name.replace("_", "-")
            print(f"modelops operator: error: {option} must be 0..65535 (see --help)", file=sys.stderr)
            return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Governance transitions as bare JSON lines, whatever the level (logic/audit.py).
    audit.configure(sys.stderr)
    from modelops.controller import handlers

    try:
        policy = policies.load(args.policy)
        common.run_as_user()  # a wrong setting stops the start, not each reconcile
    except (policies.PolicyError, ValueError) as error:
        logging.error("%s", error)
        return 2
    try:
        creds = kubeauth.load(args.kubeconfig, args.context, in_cluster_first=True)  # Kopf would retry a
    except kubeauth.CredentialsError as error:  # failed login every minute
        return _fail(f"no Kubernetes credentials: {error} (set --kubeconfig or KUBECONFIG, or run in a pod)")
    webhook: webhooks.WebhookOptions | None = None
    if args.webhook_port:
        webhook = webhooks.WebhookOptions(
            port=args.webhook_port, cert_dir=args.webhook_cert_dir, host=args.webhook_host
        )
        problem = webhook.missing()
        if problem is not None:
            # The API server fails closed (failurePolicy: Fail), so running without them is visible.
            logging.warning("admission webhooks disabled: %s", problem)
            webhook = None
    try:
        _preflight(args, webhook)
        # Local problems first (they are quick to tell); then whether the API server answers at all.
        unreachable = asyncio.run(_reach_api(creds, args.api_wait))
        if unreachable is not None:
            return _fail(unreachable)
        if args.metrics_port:
            metrics.serve(args.metrics_port)
    except StartupError as error:
        return _fail(str(error))
    except OSError as error:  # taken between the check and now
        return _fail(f"cannot serve metrics on port {args.metrics_port}: {error.strerror or error}")
    priority = args.priority if args.priority is not None else random.randint(1, 1_000_000)
    namespaces: list[str] = args.namespace
    asyncio.run(
        kopf.operator(
            registry=handlers.registry(policy=policy, webhook=webhook),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=args.standalone,
            # Naming a peering makes it mandatory: without its CRD the operator waits rather than
            # risking two active replicas.
            peering_name=None if args.standalone else args.peering,
            priority=priority,
            # Kopf types this as its private NewType of str (kopf._core.engines.peering.Identity).
            identity=identity(),  # type: ignore[arg-type]
            liveness_endpoint=args.liveness or None,
            memo=kopf.Memo(runtime=runtime.Runtime(kubeconfig=args.kubeconfig, context=args.context)),
        )
    )
    return 0
