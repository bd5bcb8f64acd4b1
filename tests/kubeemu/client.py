"""
A small synchronous Kubernetes REST client for tests, built on ``requests``.

It works the same against the emulator and a real API server (bearer token,
client certificate, CA bundle or ``verify=False``). Resources are addressed by
``apiVersion`` + ``kind`` (or the plural name) and resolved to URLs through
discovery, cached per group-version and refreshed once on a miss (so CRDs
registered meanwhile are found). Errors raise :class:`ApiError` carrying the
server's ``v1 Status``.
"""
from __future__ import annotations

import base64
import json
import pathlib
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests
import yaml

Obj = dict[str, Any]

_PATCH_CONTENT_TYPES = {
    'merge': 'application/merge-patch+json',
    'json': 'application/json-patch+json',
    'strategic': 'application/strategic-merge-patch+json',
    'apply': 'application/apply-patch+yaml',
}


class ApiError(Exception):
    """A non-2xx answer; ``body`` is the parsed Status (or the raw text if it was not JSON)."""

    def __init__(self, status: int, reason: str, body: Any, method: str = '', url: str = '') -> None:
        message = body.get('message', '') if isinstance(body, Mapping) else str(body)[:500]
        super().__init__(f'{method} {url} -> {status} {reason}: {message}')
        self.status = status
        self.reason = reason
        self.body = body
        self.message = message


class KubeClient:
    """See the module docstring."""

    def __init__(self, base_url: str, *, token: str | None = None, client_cert: tuple[str, str] | None = None,
                 ca: str | None = None, verify: bool = True, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip('/')
        self.timeout = timeout
        self.session = requests.Session()
        if token:
            self.session.headers['Authorization'] = f'Bearer {token}'
        if client_cert:
            self.session.cert = client_cert
        self.session.verify = ca if ca else verify
        self._discovery: dict[str, list[Obj]] = {}

    @classmethod
    def from_kubeconfig(cls, path: str | pathlib.Path, context: str | None = None) -> KubeClient:
        config = yaml.safe_load(pathlib.Path(path).read_text())
        ctx_name = context or config.get('current-context')
        ctx = next(c['context'] for c in config['contexts'] if c['name'] == ctx_name)
        cluster = next(c['cluster'] for c in config['clusters'] if c['name'] == ctx['cluster'])
        user = next((u['user'] for u in config.get('users') or [] if u['name'] == ctx.get('user')), {}) or {}

        def materialize(data_key: str, file_key: str, source: Mapping[str, Any]) -> str | None:
            if source.get(file_key):
                return str(source[file_key])
            if source.get(data_key):
                handle = tempfile.NamedTemporaryFile(delete=False, suffix='.pem')  # noqa: SIM115
                handle.write(base64.b64decode(source[data_key]))
                handle.close()
                return handle.name
            return None

        ca = materialize('certificate-authority-data', 'certificate-authority', cluster)
        cert = materialize('client-certificate-data', 'client-certificate', user)
        key = materialize('client-key-data', 'client-key', user)
        return cls(cluster['server'], token=user.get('token'), client_cert=(cert, key) if cert and key else None,
                   ca=ca, verify=not cluster.get('insecure-skip-tls-verify', False))

    # --- low level -------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
                content_type: str = 'application/json', stream: bool = False, timeout: float | None = None
                ) -> requests.Response:
        data = None
        headers: dict[str, str] = {}
        if body is not None:
            data = body if isinstance(body, (str, bytes)) else json.dumps(body)
            headers['Content-Type'] = content_type
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        url = f'{self.base_url}{path}'
        response = self.session.request(method, url, params=clean, data=data, headers=headers, stream=stream,
                                        timeout=timeout or self.timeout)
        if response.status_code >= 400:
            try:
                parsed: Any = response.json()
            except ValueError:
                parsed = response.text
            reason = parsed.get('reason', response.reason) if isinstance(parsed, Mapping) else response.reason
            raise ApiError(response.status_code, reason or '', parsed, method, url)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Obj:
        response = self.request(method, path, **kwargs)
        result: Obj = response.json()
        return result

    # --- discovery -------------------------------------------------------------------------------

    def _resources(self, api_version: str, refresh: bool = False) -> list[Obj]:
        if refresh or api_version not in self._discovery:
            path = f'/api/{api_version}' if '/' not in api_version else f'/apis/{api_version}'
            try:
                self._discovery[api_version] = self._json('GET', path).get('resources', [])
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self._discovery[api_version] = []
        return self._discovery[api_version]

    def resource(self, api_version: str, kind_or_plural: str) -> Obj:
        """The discovery entry (``name``, ``namespaced``, ``kind``, …) for a kind or plural name."""
        for refresh in (False, True):
            for entry in self._resources(api_version, refresh=refresh):
                if '/' not in entry['name'] and kind_or_plural in (entry['kind'], entry['name']):
                    return entry
        raise ApiError(404, 'NotFound', {'message': f'no resource {kind_or_plural!r} in {api_version!r}'})

    def url(self, api_version: str, kind: str, namespace: str | None = None, name: str | None = None,
            subresource: str | None = None) -> str:
        entry = self.resource(api_version, kind)
        base = f'/api/{api_version}' if '/' not in api_version else f'/apis/{api_version}'
        path = base
        if entry['namespaced'] and namespace is not None:
            path += f'/namespaces/{namespace}'
        path += f'/{entry["name"]}'
        if name is not None:
            path += f'/{name}'
        if subresource is not None:
            path += f'/{subresource}'
        return path

    @staticmethod
    def _coords(body: Mapping[str, Any]) -> tuple[str, str, str | None, str]:
        meta = body.get('metadata') or {}
        return body['apiVersion'], body['kind'], meta.get('namespace'), meta.get('name', '')

    # --- verbs -----------------------------------------------------------------------------------

    def create(self, body: Mapping[str, Any], namespace: str | None = None, *,
               params: Mapping[str, Any] | None = None) -> Obj:
        api_version, kind, body_ns, _ = self._coords(body)
        entry = self.resource(api_version, kind)
        ns = (namespace or body_ns or 'default') if entry['namespaced'] else None
        return self._json('POST', self.url(api_version, kind, ns), body=dict(body), params=params)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Obj:
        return self._json('GET', self.url(api_version, kind, namespace, name))

    def list_object(self, api_version: str, kind: str, namespace: str | None = None, *,
                    label_selector: str | None = None, field_selector: str | None = None,
                    limit: int | None = None, continue_token: str | None = None) -> Obj:
        """The raw List (with ``metadata.resourceVersion``); items get apiVersion/kind filled in."""
        result = self._json('GET', self.url(api_version, kind, namespace), params={
            'labelSelector': label_selector, 'fieldSelector': field_selector, 'limit': limit,
            'continue': continue_token})
        item_kind = str(result.get('kind', '')).removesuffix('List')
        for item in result.get('items') or []:
            item.setdefault('apiVersion', result.get('apiVersion'))
            item.setdefault('kind', item_kind)
        return result

    def list(self, api_version: str, kind: str, namespace: str | None = None, *,
             label_selector: str | None = None, field_selector: str | None = None) -> list[Obj]:
        """All items (following ``continue`` pages), namespaced or across all namespaces if ``None``."""
        items: list[Obj] = []
        token: str | None = None
        while True:
            page = self.list_object(api_version, kind, namespace, label_selector=label_selector,
                                    field_selector=field_selector, limit=500, continue_token=token)
            items.extend(page.get('items') or [])
            token = (page.get('metadata') or {}).get('continue')
            if not token:
                return items

    def replace(self, body: Mapping[str, Any]) -> Obj:
        api_version, kind, ns, name = self._coords(body)
        return self._json('PUT', self.url(api_version, kind, ns, name), body=dict(body))

    def replace_status(self, body: Mapping[str, Any]) -> Obj:
        api_version, kind, ns, name = self._coords(body)
        return self._json('PUT', self.url(api_version, kind, ns, name, 'status'), body=dict(body))

    def patch(self, api_version: str, kind: str, namespace: str | None, name: str, patch: Any, *,
              patch_type: str = 'merge', subresource: str | None = None, field_manager: str | None = None,
              force: bool | None = None) -> Obj:
        content_type = _PATCH_CONTENT_TYPES[patch_type]
        if patch_type == 'apply':
            field_manager = field_manager or 'kubeemu-client'
        params = {'fieldManager': field_manager, 'force': None if force is None else str(force).lower()}
        return self._json('PATCH', self.url(api_version, kind, namespace, name, subresource), body=patch,
                          content_type=content_type, params=params)

    def patch_status(self, api_version: str, kind: str, namespace: str | None, name: str, patch: Any, *,
                     patch_type: str = 'merge') -> Obj:
        return self.patch(api_version, kind, namespace, name, patch, patch_type=patch_type, subresource='status')

    def apply(self, body: Mapping[str, Any], *, field_manager: str = 'kubeemu-client', force: bool = False) -> Obj:
        api_version, kind, ns, name = self._coords(body)
        entry = self.resource(api_version, kind)
        ns = (ns or 'default') if entry['namespaced'] else None
        return self.patch(api_version, kind, ns, name, dict(body), patch_type='apply',
                          field_manager=field_manager, force=force)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str, *,
               propagation_policy: str | None = None, grace_period_seconds: int | None = None,
               preconditions: Mapping[str, str] | None = None) -> Obj:
        options: Obj = {'kind': 'DeleteOptions', 'apiVersion': 'v1'}
        if propagation_policy:
            options['propagationPolicy'] = propagation_policy
        if grace_period_seconds is not None:
            options['gracePeriodSeconds'] = grace_period_seconds
        if preconditions:
            options['preconditions'] = dict(preconditions)
        return self._json('DELETE', self.url(api_version, kind, namespace, name), body=options)

    def exists(self, api_version: str, kind: str, namespace: str | None, name: str) -> bool:
        try:
            self.get(api_version, kind, namespace, name)
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def watch(self, api_version: str, kind: str, namespace: str | None = None, *,
              resource_version: str | None = None, label_selector: str | None = None,
              field_selector: str | None = None, timeout_seconds: int | None = None,
              allow_bookmarks: bool = False, send_initial_events: bool = False) -> Iterator[Obj]:
        """Stream watch events (dicts with ``type`` and ``object``) until the server ends the stream."""
        params: dict[str, Any] = {
            'watch': 'true', 'resourceVersion': resource_version, 'labelSelector': label_selector,
            'fieldSelector': field_selector, 'timeoutSeconds': timeout_seconds,
            'allowWatchBookmarks': 'true' if allow_bookmarks else None,
        }
        if send_initial_events:
            params.update(sendInitialEvents='true', resourceVersionMatch='NotOlderThan')
        read_timeout = (timeout_seconds + 10) if timeout_seconds else None
        response = self.request('GET', self.url(api_version, kind, namespace), params=params, stream=True,
                                timeout=read_timeout or 3600)
        with response:
            for line in response.iter_lines():
                if line:
                    yield json.loads(line)

    def wait_for(self, api_version: str, kind: str, namespace: str | None, name: str,
                 predicate: Callable[[Obj | None], bool], timeout: float = 10.0, interval: float = 0.05
                 ) -> Obj | None:
        """Poll until ``predicate(obj)`` is true (``obj`` is None while absent); return the last object.

        On timeout, raise an AssertionError showing the last object seen.
        """
        deadline = time.monotonic() + timeout
        last: Obj | None = None
        while True:
            try:
                last = self.get(api_version, kind, namespace, name)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                last = None
            if predicate(last):
                return last
            if time.monotonic() >= deadline:
                shown = yaml.safe_dump(last, sort_keys=False) if last is not None else '<absent>'
                raise AssertionError(f'Timed out after {timeout}s waiting for {kind} {namespace}/{name}; '
                                     f'the last object seen:\n{shown}')
            time.sleep(interval)  # polling interval, not synchronisation: the deadline bounds the wait
