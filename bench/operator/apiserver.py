"""The emulated API server for bench/operator/run.py, in a process of its own (its own GIL).

Starts tests/kubeemu with the project's CRDs and the shipped extras (ServiceMonitor, PrometheusRule,
HTTPRoute, peering), the bench's namespace and an ``operator`` user (bearer token ``tok-operator``,
``system:masters``), prints its URL, then answers one command a line on stdin with one JSON line:

- ``count``: how many requests the emulator's audit trail holds (every request, every user);
- ``audit N``: the requests from position N on made by the ``operator`` user, counted by
  ``verb resource`` (a watch is counted when its stream ends, as the API server's audit log does).

End of stdin stops it.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from kubeemu import Emulator  # noqa: E402

TOKEN, USER = "tok-operator", "operator"


def main() -> None:
    namespace = sys.argv[1]
    emu = Emulator(history_limit=100_000).start()
    emu.register_builtin_extras()
    emu.register_crds(sorted((REPO / "crds").glob("*.yaml")))
    emu.add_user(TOKEN, USER, groups=["system:masters"])
    emu.client().create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    print(emu.url, flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "count":
            answer: object = len(emu.handler.audit)
        elif command == "audit":
            records = emu.handler.audit[int(rest[0]):]
            counts = collections.Counter(f"{r.verb} {r.resource or r.path}" for r in records if r.user == USER)
            answer = {"total": sum(counts.values()), "by": dict(counts.most_common())}
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)
    emu.stop()


if __name__ == "__main__":
    main()
