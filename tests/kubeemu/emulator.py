"""
The test-facing :class:`Emulator`: runs the emulated API server in a background thread.

The server gets its own thread and event loop, so synchronous tests, a
``KopfRunner`` thread and subprocesses can all talk to it over plain HTTP on
127.0.0.1. This module also writes kubeconfigs, manages the user table
(bearer tokens → identities, service account tokens) and registers CRDs through the API
itself. ``serve_in_cluster`` adds an HTTPS listener on an address containers reach, the way
pods reach the ``kubernetes`` Service.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import pathlib
import secrets
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp.test_utils
import yaml

from kubeemu import rbac
from kubeemu.admission import WebhookCall
from kubeemu.client import ApiError, KubeClient
from kubeemu.cluster import Cluster, Identity
from kubeemu.server import ApiHandler, AuditRecord, PlainServer
from kubeemu.tls import make_ca_and_cert

CRDS_DIR = pathlib.Path(__file__).parent / 'crds'
T = TypeVar('T')


@dataclasses.dataclass(frozen=True)
class InCluster:
    """Where pods reach the API (the ``kubernetes`` Service) and the CA that signed its certificate."""
    host: str
    port: int
    url: str
    ca_pem: bytes
    ca_path: pathlib.Path


class Emulator:
    """An emulated Kubernetes API server; see the package docstring for what it implements."""

    def __init__(self, *, history_limit: int = 10000, bookmark_interval: float = 5.0) -> None:
        self.cluster = Cluster(history_limit=history_limit)
        for obj in rbac.bootstrap():
            info = self.cluster.by_kind(obj['apiVersion'], obj['kind'])
            assert info is not None
            self.cluster.create(info, 'v1', None, obj)
        self.handler = ApiHandler(self.cluster, bookmark_interval=bookmark_interval)
        self._server: PlainServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._url: str | None = None
        self._extra_servers: list[aiohttp.test_utils.RawTestServer] = []

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError('The emulator is already started.')
        ready: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name='kubeemu', daemon=True)
        self._thread.start()
        self._url = ready.result(timeout=30)
        return self

    def _run(self, ready: concurrent.futures.Future[str]) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stopping = asyncio.Event()
            try:
                async with self.handler, PlainServer(self.handler) as server:
                    self._server = server
                    ready.set_result(str(server.url).rstrip('/'))
                    await self._stopping.wait()
                    self.cluster.close_watchers()
                    await asyncio.sleep(0)  # let the watch streams see the end and finish
            except BaseException as exc:
                if not ready.done():
                    ready.set_exception(exc)
                raise
        asyncio.run(main())

    def serve_in_cluster(self, host: str, directory: str | pathlib.Path) -> InCluster:
        """Also serve the API over HTTPS on ``host`` (an address containers reach), as pods reach the
        ``kubernetes`` Service: a throw-away CA and serving certificate (``ca.crt`` in ``directory``)
        for ``host`` and the Service's DNS names. Stopped with the emulator."""
        if self._loop is None:
            raise RuntimeError('The emulator is not started.')
        directory = pathlib.Path(directory)
        ca_pem, cert, key = make_ca_and_cert(directory, [host, 'kubernetes', 'kubernetes.default',
                                                         'kubernetes.default.svc',
                                                         'kubernetes.default.svc.cluster.local'])
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        server = aiohttp.test_utils.RawTestServer(self.handler, host=host, port=0)

        async def start() -> None:
            await server.start_server(ssl=context)
            self._extra_servers.append(server)

        asyncio.run_coroutine_threadsafe(start(), self._loop).result(timeout=30)
        assert server.port is not None
        return InCluster(host=host, port=server.port, url=f'https://{host}:{server.port}', ca_pem=ca_pem,
                         ca_path=directory / 'ca.crt')

    def service_account_token(self, namespace: str, name: str) -> str:
        """A bearer token that authenticates as the ServiceAccount, with the groups the API server gives
        service accounts (what the kubelet mounts into pods; a random string, not a signed JWT)."""
        token = f'sa-{secrets.token_urlsafe(24)}'
        uid = ''
        account = self.cluster.objects.get(('', 'serviceaccounts'), {}).get((namespace, name))
        if account is not None:
            uid = str(account['metadata'].get('uid', ''))
        self.handler.users[token] = Identity(
            f'system:serviceaccount:{namespace}:{name}',
            ('system:serviceaccounts', f'system:serviceaccounts:{namespace}', 'system:authenticated'), uid)
        return token

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stopping is None:
            return
        for server in self._extra_servers:
            asyncio.run_coroutine_threadsafe(server.close(), self._loop).result(timeout=30)
        self._extra_servers.clear()
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError('The emulator is not started.')
        return self._url

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the emulator's loop thread (state access that is atomic with the requests)."""
        if self._loop is None:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)
        self._loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    # --- users, state, audit ---------------------------------------------------------------------

    def add_user(self, token: str, username: str, groups: Iterable[str] = (), uid: str = '',
                 extra: Mapping[str, list[str]] | None = None) -> None:
        """Make ``Authorization: Bearer <token>`` authenticate as this user (``system:authenticated`` added)."""
        all_groups = tuple(groups) + (() if 'system:authenticated' in groups else ('system:authenticated',))
        self.handler.users[token] = Identity(username, all_groups, uid, dict(extra or {}))

    def grant(self, user: str, rules: Iterable[Mapping[str, Any]], *, namespace: str | None = None,
              name: str | None = None) -> None:
        """Allow ``user`` what ``rules`` (RBAC PolicyRules) say: a Role and RoleBinding in ``namespace``,
        or a ClusterRole and ClusterRoleBinding without one (named ``name``, default ``grant-<user>``)."""
        name = name or f'grant-{user}'.replace(':', '-')
        scope = 'Role' if namespace else 'ClusterRole'
        meta: dict[str, Any] = {'name': name, **({'namespace': namespace} if namespace else {})}
        client = self.client()
        client.create({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': scope, 'metadata': dict(meta),
                       'rules': [dict(rule) for rule in rules]})
        client.create({'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': f'{scope}Binding',
                       'metadata': dict(meta),
                       'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': scope, 'name': name},
                       'subjects': [{'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'User', 'name': user}]})

    @property
    def webhook_services(self) -> dict[tuple[str, str], str]:
        """``(namespace, name)`` of a webhook ``clientConfig.service`` → base URL (``https://127.0.0.1:PORT``)."""
        return self.handler.webhooks.services

    @property
    def webhook_calls(self) -> list[WebhookCall]:
        """Every admission webhook call made so far, with its outcome."""
        return list(self.handler.webhooks.calls)

    def set_container_log(self, namespace: str, pod: str, container: str, text: str) -> None:
        """Record what ``pods/{pod}/log?container=`` serves: a kubelet's part, played by the test.

        The log belongs to the pod as it exists now (its uid): a pod re-created under the same
        name starts without one, as on a real node."""
        def record() -> None:
            obj = self.cluster.get(self.cluster.find('', 'v1', 'pods'), namespace, pod)
            self.cluster.container_logs[(namespace, pod, container)] = (obj['metadata']['uid'], text)
        self.call(record)

    def compact(self) -> int:
        """Drop the watch history (like etcd compaction): older resourceVersions then get 410 Gone."""
        return self.call(self.cluster.compact)

    @property
    def audit(self) -> list[AuditRecord]:
        return list(self.handler.audit)

    @property
    def internal_errors(self) -> list[Exception]:
        """Unexpected exceptions inside the emulator (each one was answered with a 500)."""
        return list(self.handler._errors[-1]) if self.handler._errors else []

    # --- kubeconfig & clients --------------------------------------------------------------------

    def write_kubeconfig(self, path: str | pathlib.Path, token: str | None = None) -> pathlib.Path:
        path = pathlib.Path(path)
        user: dict[str, Any] = {'token': token} if token else {}
        config = {
            'apiVersion': 'v1', 'kind': 'Config', 'preferences': {},
            'clusters': [{'name': 'kubeemu', 'cluster': {'server': self.url}}],
            'users': [{'name': 'kubeemu', 'user': user}],
            'contexts': [{'name': 'kubeemu', 'context': {'cluster': 'kubeemu', 'user': 'kubeemu',
                                                          'namespace': 'default'}}],
            'current-context': 'kubeemu',
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return path

    def client(self, token: str | None = None) -> KubeClient:
        return KubeClient(self.url, token=token)

    # --- CRDs ------------------------------------------------------------------------------------

    def register_crds(self, paths_or_dicts: Iterable[str | pathlib.Path | Mapping[str, Any]] | str | pathlib.Path
                      ) -> list[dict[str, Any]]:
        """Create (or replace) CRDs through the API, from YAML files, directories of them, or dicts."""
        if isinstance(paths_or_dicts, (str, pathlib.Path)):
            paths_or_dicts = [paths_or_dicts]
        docs: list[Mapping[str, Any]] = []
        for item in paths_or_dicts:
            if isinstance(item, Mapping):
                docs.append(item)
                continue
            item = pathlib.Path(item)
            files = sorted(item.glob('*.yaml')) + sorted(item.glob('*.yml')) if item.is_dir() else [item]
            for file in files:
                docs.extend(d for d in yaml.safe_load_all(file.read_text())
                            if isinstance(d, Mapping) and d.get('kind') == 'CustomResourceDefinition')
        client = self.client()
        created: list[dict[str, Any]] = []
        for doc in docs:
            try:
                created.append(client.create(dict(doc)))
            except ApiError as exc:
                if exc.status != 409:
                    raise
                current = client.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', None,
                                     doc['metadata']['name'])
                body = dict(doc)
                body['metadata'] = {**doc['metadata'], 'resourceVersion': current['metadata']['resourceVersion']}
                created.append(client.replace(body))
        return created

    def register_builtin_extras(self) -> list[dict[str, Any]]:
        """Register the shipped CRDs: monitoring.coreos.com, gateway.networking.k8s.io, kopf.dev peering."""
        return self.register_crds([CRDS_DIR])
