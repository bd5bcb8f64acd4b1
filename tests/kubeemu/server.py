"""
The HTTP face of the emulator: a kmock ``RawHandler`` that speaks the Kubernetes REST API.

It parses Kubernetes URLs, authenticates the caller (bearer token → user table;
no credentials → ``system:admin`` in ``system:masters``), decodes bodies (JSON
or YAML) and the four PATCH content types, maps HTTP methods to verbs, serves
discovery and ``/version``, streams watches as JSON lines (with bookmarks,
``timeoutSeconds``, ``sendInitialEvents`` and the 410 ``ERROR`` event), and
renders every failure as a ``v1 Status``. The semantics live in
:mod:`kubeemu.cluster`. Reactions added with kmock's DSL
(``emu.handler['get /x'] << 500``) take precedence over the emulation, so tests
can still inject faults.

An audit trail of every request (verb, path, user, code, user agent) is kept in
:attr:`ApiHandler.audit` for assertions.
"""
from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import re
import time
from collections.abc import Callable
from typing import Any

import aiohttp.test_utils
import aiohttp.web
import kmock
import yaml
from kmock._internal import rendering

from kubeemu import errors, resources, selectors
from kubeemu.admission import WebhookCaller
from kubeemu.cluster import ADMIN, Cluster, Identity, Obj, StaleError, Steps, T
from kubeemu.rbac import Authorizer
from kubeemu.resources import ResourceInfo

_PATCH_TYPES = {
    'application/merge-patch+json': 'merge',
    'application/json-patch+json': 'json',
    'application/strategic-merge-patch+json': 'strategic',
    'application/apply-patch+yaml': 'apply',
    'application/apply-patch+json': 'apply',
}
_SERVER_VERSION = {
    'major': '1', 'minor': '33', 'gitVersion': 'v1.33.0-kubeemu', 'gitCommit': '0' * 40,
    'gitTreeState': 'clean', 'buildDate': '2025-01-01T00:00:00Z', 'goVersion': 'go1.24.0',
    'compiler': 'gc', 'platform': 'linux/amd64',
}


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    verb: str
    method: str
    path: str
    query: str
    user: str
    code: int
    user_agent: str
    resource: str = ''
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


@dataclasses.dataclass(frozen=True)
class Target:
    """A parsed resource URL."""
    info: ResourceInfo
    version: str
    namespace: str | None
    name: str | None
    subresource: str | None


def _truthy(value: str | None) -> bool:
    return value in ('true', '1', 'True')


class ApiHandler(kmock.RawHandler):
    """See the module docstring."""

    def __init__(self, cluster: Cluster, *, bookmark_interval: float = 5.0) -> None:
        super().__init__()
        self.cluster = cluster
        self.users: dict[str, Identity] = {}
        self.audit: list[AuditRecord] = []
        self.bookmark_interval = bookmark_interval
        self.default_watch_timeout = 1800.0
        # Requests whose watch stream has started, by id, with their target: a client that closes a watch
        # is audited as the watch it was (verb, resource), as the API server's audit log records it.
        self._streaming: dict[int, Target] = {}
        self.webhooks = WebhookCaller(cluster)
        self.authorizer = Authorizer(cluster)

    # --- dispatch --------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        """Like kmock's entry point, but tolerant to URLs that kmock's K8s path parser rejects."""
        body = await raw_request.read()
        try:
            request = await rendering.Request._parse(raw_request, id=len(self._requests))
        except Exception:  # e.g. kmock fails on `/api/v1/namespaces`; keep the raw facts only
            request = rendering.Request(
                id=len(self._requests), raw_request=raw_request, url=raw_request.url, method=raw_request.method,
                params=dict(raw_request.query), headers=dict(raw_request.headers), body=body,
                text=body.decode(errors='replace'))
        self._requests.append(request)
        try:
            return await self._handle(request)
        except Exception as exc:
            if not self._errors:
                raise
            self._errors[-1].append(exc)
            return await self._render_error(exc)

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        if self._payloads:  # explicit kmock reactions (fault injection) win over the emulation
            try:
                return await super()._handle(request)
            except NotImplementedError:
                pass
        raw = request._raw_request
        assert raw is not None
        verb, target, user_name, code = raw.method.lower(), None, '', 500
        try:
            user = self._authenticate(raw)
            user_name = user.username
            response, verb, target = await self._dispatch(raw, user)
            code = response.status
            return response
        except errors.StatusError as exc:
            code = exc.code
            if exc.audit is not None:
                verb, target = exc.audit
            return aiohttp.web.json_response(exc.to_status(), status=exc.code)
        except asyncio.CancelledError:  # the client went away; a started stream was a 200 for it
            code = 499
            if id(raw) in self._streaming:
                code, verb, target = 200, 'watch', self._streaming[id(raw)]
            raise
        finally:
            self._streaming.pop(id(raw), None)
            self.audit.append(AuditRecord(
                verb=verb, method=raw.method, path=raw.path, query=raw.query_string, user=user_name, code=code,
                user_agent=raw.headers.get('User-Agent', ''),
                resource=target.info.plural if target else '', namespace=target.namespace if target else None,
                name=target.name if target else None, subresource=target.subresource if target else None))

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        return aiohttp.web.json_response(
            errors.StatusError(500, 'InternalError', f'Internal error occurred: {exc!r}').to_status(), status=500)

    def _authenticate(self, raw: aiohttp.web.BaseRequest) -> Identity:
        header = raw.headers.get('Authorization', '')
        if not header:
            return ADMIN
        scheme, _, token = header.partition(' ')
        if scheme.lower() == 'bearer' and token.strip() in self.users:
            return self.users[token.strip()]
        raise errors.unauthorized()

    async def _dispatch(self, raw: aiohttp.web.BaseRequest, user: Identity
                        ) -> tuple[aiohttp.web.StreamResponse, str, Target | None]:
        path = raw.path.rstrip('/') or '/'
        parts = [p for p in path.split('/') if p]
        method = raw.method.upper()
        resource_request = (parts[:1] == ['api'] and len(parts) > 2) or (parts[:1] == ['apis'] and len(parts) > 3)
        if not resource_request:  # discovery, /version, health: authorized by path (system:discovery …)
            self._authorize(user, {'verb': method.lower(), 'path': path})
        if path in ('/healthz', '/livez', '/readyz') or re.match(r'^/(healthz|livez|readyz)/', path):
            return aiohttp.web.Response(text='ok'), 'get', None
        if method == 'GET' and path == '/version':
            return aiohttp.web.json_response(_SERVER_VERSION), 'get', None
        if method == 'GET' and path == '/':
            return aiohttp.web.json_response({'paths': self._root_paths()}), 'get', None
        if method == 'GET' and parts == ['api']:
            return aiohttp.web.json_response({
                'kind': 'APIVersions', 'versions': ['v1'],
                'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': raw.host}],
            }), 'get', None
        if method == 'GET' and parts == ['apis']:
            groups = resources.group_versions(self.cluster.resources.values())
            return aiohttp.web.json_response({
                'kind': 'APIGroupList', 'apiVersion': 'v1',
                'groups': [resources.render_group(g, vs) for g, vs in sorted(groups.items()) if g],
            }), 'get', None
        if method == 'GET' and parts == ['api', 'v1']:
            return aiohttp.web.json_response(self._resource_list('', 'v1')), 'get', None
        if method == 'GET' and len(parts) == 2 and parts[0] == 'apis':
            versions = resources.group_versions(self.cluster.resources.values()).get(parts[1])
            if not versions or not parts[1]:
                raise errors.endpoint_not_found()
            return aiohttp.web.json_response(resources.render_group(parts[1], versions)), 'get', None
        if method == 'GET' and len(parts) == 3 and parts[0] == 'apis':
            listing = self._resource_list(parts[1], parts[2])
            return aiohttp.web.json_response(listing), 'get', None
        target = self._parse_target(parts)
        try:
            response, verb = await self._serve(raw, target, user)
        except errors.StatusError as exc:
            exc.audit = (self._verb(method, target, raw.query), target)  # what the audit records of a failure
            raise
        return response, verb, target

    def _authorize(self, user: Identity, attrs: dict[str, Any]) -> None:
        """Refuse with 403 what RBAC does not allow, worded as the API server's authorization filter does."""
        allowed, _ = self.authorizer.decide(user.username, user.groups, attrs)
        if allowed:
            return
        verb = attrs['verb']
        if 'path' in attrs:
            raise errors.forbidden(f'forbidden: User "{user.username}" cannot {verb} path "{attrs["path"]}"')
        resource = attrs['resource'] + (f'/{attrs["subresource"]}' if attrs.get('subresource') else '')
        group, namespace, name = attrs['group'], attrs.get('namespace'), attrs.get('name')
        where = f'in the namespace "{namespace}"' if namespace else 'at the cluster scope'
        why = f'User "{user.username}" cannot {verb} resource "{resource}" in API group "{group}" {where}'
        qualified = f'{attrs["resource"]}.{group}' if group else attrs['resource']
        subject = f'{qualified} "{name}"' if name else qualified
        details = {'name': name or '', **({'group': group} if group else {}), 'kind': attrs['resource']}
        raise errors.forbidden(f'{subject} is forbidden: {why}', details)

    @staticmethod
    def _verb(method: str, target: Target, query: Any) -> str:
        """The authorization verb of a resource request (the API server's RequestInfo)."""
        if method == 'GET':
            if target.name is not None:
                return 'get'
            return 'watch' if _truthy(query.get('watch')) else 'list'
        if method == 'DELETE':
            return 'delete' if target.name is not None else 'deletecollection'
        return {'POST': 'create', 'PUT': 'update', 'PATCH': 'patch'}.get(method, method.lower())

    def _root_paths(self) -> list[str]:
        paths = {'/api', '/api/v1', '/apis', '/version', '/healthz', '/livez', '/readyz'}
        for group, versions in resources.group_versions(self.cluster.resources.values()).items():
            if group:
                paths.add(f'/apis/{group}')
                paths.update(f'/apis/{group}/{v}' for v in versions)
        return sorted(paths)

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        served = [i for i in self.cluster.resources.values() if i.group == group and version in i.versions]
        if not served:
            raise errors.endpoint_not_found()
        return resources.render_resource_list(group, version, served)

    def _parse_target(self, parts: list[str]) -> Target:
        if len(parts) >= 2 and parts[0] == 'api' and parts[1] == 'v1':
            group, version, rest = '', 'v1', parts[2:]
        elif len(parts) >= 3 and parts[0] == 'apis':
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise errors.endpoint_not_found()
        if not rest:
            raise errors.endpoint_not_found()
        namespace: str | None = None
        if rest[0] == 'namespaces' and len(rest) >= 3:
            maybe = self.cluster.resources.get((group, rest[2]))
            if maybe is not None and maybe.namespaced:
                namespace, rest = rest[1], rest[2:]
        if len(rest) > 3:
            raise errors.endpoint_not_found()
        info = self.cluster.find(group, version, rest[0])
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and subresource not in info.subresources:
            raise errors.endpoint_not_found()
        if namespace is not None and not info.namespaced:
            raise errors.endpoint_not_found()
        if name is not None and info.namespaced and namespace is None:
            raise errors.endpoint_not_found()
        return Target(info, version, namespace, name, subresource)

    # --- bodies ----------------------------------------------------------------------------------

    @staticmethod
    async def _body(raw: aiohttp.web.BaseRequest) -> Any:
        text = await raw.text()
        if not text.strip():
            return None
        content_type = raw.content_type or ''
        if 'protobuf' in content_type:
            raise errors.StatusError(415, 'UnsupportedMediaType', 'kubeemu serves JSON and YAML only, not '
                                     f'{content_type} (kubectl: use `-f` manifests, not typed generators)')
        try:
            if 'yaml' in content_type:
                return yaml.safe_load(text)
            return json.loads(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise errors.bad_request(f'the body of the request could not be decoded: {exc}') from exc

    def _render(self, info: ResourceInfo, version: str, obj: Obj, *, status: int = 200,
                warnings: list[str] | None = None) -> aiohttp.web.Response:
        headers = {'Warning': ', '.join(f'299 - "{w}"' for w in warnings)} if warnings else None
        return aiohttp.web.json_response(self._out(info, version, obj), status=status, headers=headers)

    @staticmethod
    def _options(kind: str, query: Any) -> Obj:
        options: Obj = {'kind': kind, 'apiVersion': 'meta.k8s.io/v1'}
        if query.get('fieldManager'):
            options['fieldManager'] = query['fieldManager']
        if query.get('dryRun') == 'All':
            options['dryRun'] = ['All']
        return options

    @staticmethod
    def _out(info: ResourceInfo, version: str, obj: Obj, *, in_list: bool = False) -> Obj:
        out = dict(obj)
        if in_list and not info.custom:  # the real server omits them for built-in list items
            out.pop('apiVersion', None)
            out.pop('kind', None)
        else:
            out['apiVersion'] = info.api_version(version)
            out['kind'] = info.kind
        return out

    # --- verbs -----------------------------------------------------------------------------------

    async def _admitted(self, make_steps: Callable[[], Steps[T]], warnings: list[str]) -> T:
        """Drive a write verb, awaiting the admission webhooks of each phase (the loop stays free).

        Without matching webhooks nothing is awaited, so the verb stays atomic. If the object
        changed while a webhook ran, the verb starts over, as the real server's retrying update does.
        """
        for _ in range(10):
            steps = make_steps()
            try:
                request = next(steps)
                while True:
                    answer, more = await self.webhooks.admit(request)
                    warnings.extend(more)
                    request = steps.send(answer)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            except StaleError:
                continue
            finally:
                steps.close()
        raise errors.StatusError(409, 'Conflict', 'the object kept changing while admission webhooks ran')

    async def _serve(self, raw: aiohttp.web.BaseRequest, target: Target, user: Identity
                     ) -> tuple[aiohttp.web.StreamResponse, str]:
        info, version, ns, name, sub = target.info, target.version, target.namespace, target.name, target.subresource
        query = raw.query
        method = raw.method.upper()
        self._authorize(user, {'verb': self._verb(method, target, query), 'group': info.group,
                               'resource': info.plural, 'subresource': sub or '', 'namespace': ns or '',
                               'name': name if method != 'POST' else ''})
        dry_run = query.get('dryRun') == 'All'
        field_validation = query.get('fieldValidation')
        if sub == 'log':
            if method != 'GET' or name is None or ns is None:
                raise errors.method_not_allowed(method.lower(), info.group, f'{info.plural}/log')
            return self._pod_log(ns, name, query), 'get'
        if info.group == 'authorization.k8s.io' and info.kind in resources.REVIEW_KINDS:
            if method != 'POST' or name is not None:
                raise errors.method_not_allowed(method.lower(), info.group, info.plural)
            review = self.authorizer.review(await self._body(raw), info.kind, user, ns)
            return aiohttp.web.json_response(review, status=201), 'create'
        if method == 'GET' and name is None:
            labels = selectors.parse_labels(query.get('labelSelector'))
            fields = selectors.parse_fields(query.get('fieldSelector'), info.field_selectors)
            matcher = selectors.make_matcher(labels, fields)
            if _truthy(query.get('watch')):
                return await self._watch(raw, target, matcher), 'watch'
            limit = int(query['limit']) if query.get('limit', '').isdigit() else None
            items, list_rv, token = self.cluster.list(info, ns, matcher, limit=limit,
                                                      continue_token=query.get('continue'))
            meta: dict[str, Any] = {'resourceVersion': list_rv}
            if token:
                meta['continue'] = token
            return aiohttp.web.json_response({
                'kind': info.list_kind, 'apiVersion': info.api_version(version), 'metadata': meta,
                'items': [self._out(info, version, o, in_list=True) for o in items],
            }), 'list'
        if method == 'GET':
            assert name is not None
            return self._render(info, version, self.cluster.get(info, ns, name)), 'get'
        if method == 'POST':
            if name is not None:
                raise errors.method_not_allowed('create', info.group, info.plural)
            if info.namespaced and ns is None:
                raise errors.method_not_allowed('create', info.group, info.plural)
            body = await self._body(raw)
            warnings: list[str] = []
            obj, more = await self._admitted(lambda: self.cluster.create_steps(
                info, version, ns, body, user=user, dry_run=dry_run, field_validation=field_validation,
                options=self._options('CreateOptions', query)), warnings)
            return self._render(info, version, obj, status=201, warnings=more + warnings), 'create'
        if method == 'PUT' and name is not None:
            body = await self._body(raw)
            warnings = []
            obj, more = await self._admitted(lambda: self.cluster.update_steps(
                info, version, ns, name, body, subresource=sub, user=user, dry_run=dry_run,
                field_validation=field_validation, options=self._options('UpdateOptions', query)), warnings)
            return self._render(info, version, obj, warnings=more + warnings), 'update'
        if method == 'PATCH' and name is not None:
            content_type = (raw.headers.get('Content-Type') or '').split(';')[0].strip()
            patch_type = _PATCH_TYPES.get(content_type)
            if patch_type is None:
                raise errors.unsupported_media_type(content_type)
            body = await self._body(raw)
            if patch_type == 'apply' and not isinstance(body, dict):
                body = yaml.safe_load(await raw.text())
            warnings = []
            obj, more, created = await self._admitted(lambda: self.cluster.patch_steps(
                info, version, ns, name, patch_type, body, subresource=sub, user=user, dry_run=dry_run,
                field_manager=query.get('fieldManager'), field_validation=field_validation), warnings)
            return self._render(info, version, obj, status=201 if created else 200,
                                warnings=more + warnings), 'patch'
        if method == 'DELETE':
            options = await self._body(raw) or {}
            if not isinstance(options, dict):
                raise errors.bad_request('DeleteOptions must be an object')
            propagation = query.get('propagationPolicy') or options.get('propagationPolicy')
            if options.get('orphanDependents') is True and propagation is None:
                propagation = 'Orphan'
            dry_run = dry_run or 'All' in (options.get('dryRun') or [])
            if name is None:
                labels = selectors.parse_labels(query.get('labelSelector'))
                fields = selectors.parse_fields(query.get('fieldSelector'), info.field_selectors)
                items, list_rv, _ = self.cluster.list(info, ns, selectors.make_matcher(labels, fields))
                deleted = []
                for item in items:
                    item_meta = item['metadata']
                    deleted.append(await self._admitted(functools.partial(
                        self.cluster.delete_steps, info, item_meta.get('namespace'), item_meta['name'],
                        propagation=propagation, user=user, dry_run=dry_run), []))
                return aiohttp.web.json_response({
                    'kind': info.list_kind, 'apiVersion': info.api_version(version),
                    'metadata': {'resourceVersion': list_rv},
                    'items': [self._out(info, version, o, in_list=True) for o in deleted],
                }), 'deletecollection'
            warnings = []
            obj = await self._admitted(lambda: self.cluster.delete_steps(
                info, ns, name, propagation=propagation, preconditions=options.get('preconditions'), user=user,
                dry_run=dry_run), warnings)
            return self._render(info, version, obj, warnings=warnings), 'delete'
        raise errors.method_not_allowed(method.lower(), info.group, info.plural)

    def _pod_log(self, namespace: str, name: str, query: Any) -> aiohttp.web.Response:
        """``pods/{name}/log``: the recorded text of a container, ``tailLines``/``limitBytes`` applied."""
        pod = self.cluster.get(self.cluster.find('', 'v1', 'pods'), namespace, name)
        containers = [c.get('name') for c in (pod.get('spec') or {}).get('containers') or []]
        container = query.get('container') or (containers[0] if len(containers) == 1 else None)
        if container is None:
            raise errors.bad_request(f'a container name must be specified for pod {name}, choose one of: {containers}')
        if container not in containers:
            raise errors.bad_request(f'container {container} is not valid for pod {name}')
        recorded = self.cluster.container_logs.get((namespace, name, container))
        if recorded is None or recorded[0] != pod['metadata'].get('uid'):
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating')
        text = recorded[1]
        if query.get('tailLines', '').isdigit():
            lines = text.splitlines(keepends=True)
            text = ''.join(lines[-int(query['tailLines']):]) if int(query['tailLines']) else ''
        if query.get('limitBytes', '').isdigit():
            text = text.encode()[: int(query['limitBytes'])].decode(errors='ignore')
        return aiohttp.web.Response(text=text, content_type='text/plain')

    # --- watch -----------------------------------------------------------------------------------

    async def _watch(self, raw: aiohttp.web.BaseRequest, target: Target, matcher: selectors.Matcher
                     ) -> aiohttp.web.StreamResponse:
        query = raw.query
        info, version = target.info, target.version
        rv_param = query.get('resourceVersion') or ''
        send_initial = _truthy(query.get('sendInitialEvents'))
        bookmarks = _truthy(query.get('allowWatchBookmarks'))
        try:
            timeout = float(query['timeoutSeconds']) if query.get('timeoutSeconds') else self.default_watch_timeout
        except ValueError as exc:
            raise errors.bad_request(f'invalid timeoutSeconds: {query["timeoutSeconds"]!r}') from exc
        if not rv_param or rv_param == '0' or send_initial:
            since: int | None = None
        elif rv_param.isdigit():
            since = int(rv_param)
        else:
            raise errors.bad_request(f'invalid resource version: {rv_param!r}')

        response = aiohttp.web.StreamResponse(status=200, headers={'Content-Type': 'application/json'})
        response.enable_chunked_encoding()
        try:
            watcher, replay = self.cluster.subscribe(info, target.namespace, matcher, since)
            snapshot_rv = self.cluster.rv
        except errors.StatusError as exc:
            await response.prepare(raw)
            await response.write(json.dumps({'type': 'ERROR', 'object': exc.to_status()}).encode() + b'\n')
            await response.write_eof()
            return response

        async def send(kind: str, obj: Obj) -> None:
            line = json.dumps({'type': kind, 'object': obj}).encode() + b'\n'
            await response.write(line)

        def bookmark(rv: int, initial_end: bool = False) -> Obj:
            meta: dict[str, Any] = {'resourceVersion': str(rv)}
            if initial_end:
                meta['annotations'] = {'k8s.io/initial-events-end': 'true'}
            return {'kind': info.kind, 'apiVersion': info.api_version(version), 'metadata': meta}

        try:
            await response.prepare(raw)
            self._streaming[id(raw)] = target
            for kind, obj in replay:
                await send(kind, self._out(info, version, obj))
            if send_initial and bookmarks:
                # The live queue may already hold newer events: the bookmark must not claim them.
                await send('BOOKMARK', bookmark(snapshot_rv, initial_end=True))
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                wait = min(remaining, self.bookmark_interval) if bookmarks else remaining
                try:
                    event = await asyncio.wait_for(watcher.queue.get(), wait)
                except TimeoutError:
                    if bookmarks and watcher.queue.empty() and deadline - time.monotonic() > 0:
                        await send('BOOKMARK', bookmark(self.cluster.rv))
                    continue
                if event is None:
                    break
                translated = watcher.translate(event)
                if translated is not None:
                    await send(translated[0], self._out(info, version, translated[1]))
            await response.write_eof()
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            pass
        finally:
            self.cluster.unsubscribe(watcher)
        return response


class PlainServer(kmock.Server):
    """kmock's Server without its process-wide DNS interceptor (several emulators may run in parallel)."""

    async def __aenter__(self) -> PlainServer:
        self._managed_server = aiohttp.test_utils.RawTestServer(self.handler, host=self._host, port=self._port)
        await self._managed_server.start_server()
        self.handler.servers.append(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.handler.servers.remove(self)
        assert self._managed_server is not None
        await self._managed_server.close()
        self._managed_server = None
