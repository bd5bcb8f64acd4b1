"""The latency floor of the machine: an HTTP server that does nothing, on the same stack as ``modelops serve``.

``bench/serve/run.py`` runs it next to the two peers, pinned to the same core, driven by the same
wrk: uvloop, httptools, TCP_NODELAY, one ``transport.write`` per answer, and a constant answer of
about the size of a single-row prediction. No model server on this machine answers faster than
it, so its p99 is what the machine (the scheduler, other processes, the hypervisor) adds to any
request; a peer's p99 can be judged against it.

    python bench/serve/floor.py --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from typing import cast

import httptools
import uvloop

_BODY = b'{"model_name":"breast-cancer","model_version":"1","outputs":[{"name":"predict","datatype":"INT64","shape":[1],"data":[1]}]}'  # noqa: E501
_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(_BODY), _BODY)


class _Floor(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        if self.transport is not None:
            self.transport.write(_ANSWER)


async def _serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Floor, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvloop.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
