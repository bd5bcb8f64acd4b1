"""The same :class:`modelops.serve.app.App` as a raw ASGI app on uvicorn, to measure the HTTP layer choice.

Not used in production: ``bench/serve/run.py --with-uvicorn`` runs it next to ``modelops serve`` so
that the asyncio-protocol-on-httptools layer in ``modelops.serve.server`` is compared against
uvicorn (httptools + uvloop) with everything else equal.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn

from modelops.serve import app, codec, metrics, predictor


def build(model_dir: Path, name: str) -> Any:
    contract = predictor.load_contract(model_dir)
    assert contract.sha256 is not None
    model = predictor.load(model_dir, contract, contract.sha256)
    plan = codec.make_plan(contract)
    layout = metrics.build_layout(
        model=name,
        version="1",
        classes=model.class_labels,
        prediction_bounds=model.prediction_bounds,
        numeric=[(s.name, plan.slots[s.name][1], s.interior) for s in contract.numeric_stats],
    )
    core = app.App(model, plan, metrics.Store(layout), name=name, version="1", server_version="bench")

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
        status, _, payload = core.handle(scope["method"].encode(), target, body, started)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(payload))],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    return asgi


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--model-dir", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvicorn.run(
        build(args.model_dir, args.name),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
