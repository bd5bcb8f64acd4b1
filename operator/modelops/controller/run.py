"""``modelops operator``: run the Kopf operator with the project's settings.

Peering lets only one of several replicas act; a liveness endpoint and the operator's own
metrics are served, and the admission webhooks over HTTPS (every replica serves those, active
or not). The settings themselves are in ``modelops.controller.settings``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from collections.abc import Sequence

import kopf

from modelops.controller import metrics, webhooks
from modelops.controller.settings import PEERING_NAME
from modelops.logic import policy as policies


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modelops operator", description="Run the modelops Kopf operator.")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed); default: all namespaces",
    )
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (default)")
    parser.add_argument("--standalone", action="store_true", help="do not coordinate with other replicas (no peering)")
    parser.add_argument(
        "--peering",
        default=os.environ.get("MODELOPS_PEERING", PEERING_NAME),
        help="name of the peering object replicas coordinate through",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority; the highest acts, the others wait (default: random)",
    )
    parser.add_argument(
        "--liveness",
        default=os.environ.get("MODELOPS_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="liveness endpoint URL to serve (empty to disable)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("MODELOPS_METRICS_PORT", "8081")),
        help="port of the operator's own /metrics (0 to disable)",
    )
    parser.add_argument(
        "--policy",
        default=os.environ.get("MODELOPS_POLICY_FILE") or None,
        help="governance policy file (YAML, see docs/governance.md); default: the built-in defaults",
    )
    parser.add_argument(
        "--webhook-port",
        type=int,
        default=int(os.environ.get("MODELOPS_WEBHOOK_PORT", "9443")),
        help="HTTPS port of the admission webhooks (0 to disable)",
    )
    parser.add_argument(
        "--webhook-cert-dir",
        default=os.environ.get("MODELOPS_WEBHOOK_CERT_DIR", webhooks.WebhookOptions.cert_dir),
        help="directory with the webhook server's tls.crt and tls.key",
    )
    parser.add_argument(
        "--webhook-host",
        default=os.environ.get("MODELOPS_WEBHOOK_HOST", webhooks.WebhookOptions.host),
        help="address the webhook server listens on",
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from modelops.controller import handlers

    try:
        policy = policies.load(args.policy)
    except policies.PolicyError as error:
        logging.error("%s", error)
        return 2
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
    if args.metrics_port:
        metrics.serve(args.metrics_port)
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
            liveness_endpoint=args.liveness or None,
        )
    )
    return 0
