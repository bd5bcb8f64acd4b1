"""``modelops operator``: run the Kopf operator with the project's settings.

Peering lets only one of several replicas act; a liveness endpoint and the operator's own
metrics are served. The settings themselves are in ``modelops.controller.settings``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
from collections.abc import Sequence

import kopf

from modelops.controller import metrics
from modelops.controller.settings import PEERING_NAME


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
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from modelops.controller import handlers

    if args.metrics_port:
        metrics.serve(args.metrics_port)
    priority = args.priority if args.priority is not None else random.randint(1, 1_000_000)
    namespaces: list[str] = args.namespace
    asyncio.run(
        kopf.operator(
            registry=handlers.registry(),
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
