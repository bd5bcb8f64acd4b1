"""Entry point of kubectl-modelops (filled in by the plugin work)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("kubectl-modelops: not implemented yet", file=sys.stderr)
    return 2
