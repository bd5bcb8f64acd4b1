"""
A real HTTPS admission webhook server for fidelity tests, run in a thread.

It serves ``POST /<path>`` with an ``AdmissionReview``: the test registers a
function per path that gets the ``request`` and returns the ``response`` fields
(``uid`` and the envelope are added). It records every review it received.
TLS is real: a CA and a serving cert for 127.0.0.1/localhost from
:func:`kubeemu.tls.make_ca_and_cert`; :meth:`WebhookPeer.client_config` gives the
``clientConfig`` (``url`` + base64 ``caBundle``) to put into a webhook configuration.
"""
from __future__ import annotations

import base64
import http.server
import json
import pathlib
import ssl
import threading
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from kubeemu.tls import make_ca_and_cert

Review = dict[str, Any]
Decide = Callable[[Review], dict[str, Any]]


def allow(_: Review) -> dict[str, Any]:
    return {'allowed': True}


def json_patch(*operations: dict[str, Any]) -> dict[str, Any]:
    """The response fields of a mutating webhook that applies ``operations``."""
    encoded = base64.b64encode(json.dumps(list(operations)).encode()).decode()
    return {'allowed': True, 'patchType': 'JSONPatch', 'patch': encoded}


class WebhookPeer:
    """See the module docstring."""

    def __init__(self, cert_dir: str | pathlib.Path, hosts: Sequence[str] = ('127.0.0.1', 'localhost')) -> None:
        self.ca_pem, cert_path, key_path = make_ca_and_cert(cert_dir, hosts)
        self.handlers: dict[str, Decide] = {}
        self.received: list[tuple[str, Review]] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the stdlib's naming
                length = int(self.headers.get('Content-Length') or 0)
                review = json.loads(self.rfile.read(length))
                path = self.path.split('?', 1)[0]
                with peer._lock:
                    peer.received.append((self.path, review))
                decide = peer.handlers.get(path)
                if decide is None:
                    self.send_error(404)
                    return
                response = {'uid': review['request']['uid'], **decide(review['request'])}
                body = json.dumps({'apiVersion': 'admission.k8s.io/v1', 'kind': 'AdmissionReview',
                                   'response': response}).encode()
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name='webhook-peer',
                                        daemon=True)

    @property
    def url(self) -> str:
        return f'https://127.0.0.1:{self._server.server_address[1]}'

    def client_config(self, path: str) -> dict[str, str]:
        return {'url': self.url + path, 'caBundle': base64.b64encode(self.ca_pem).decode()}

    def reviews(self, path: str) -> list[Review]:
        """The ``request`` parts of the reviews received at ``path``."""
        with self._lock:
            return [r['request'] for p, r in self.received if p.split('?', 1)[0] == path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
