"""
Dynamic admission control: calling the webhooks of stored webhook configurations.

The write verbs of :mod:`kubeemu.cluster` yield an :class:`~kubeemu.cluster.AdmissionRequest`
for each phase (mutating, then validating); the HTTP layer hands it to
:meth:`WebhookCaller.admit`, which reads the stored ``MutatingWebhookConfiguration`` or
``ValidatingWebhookConfiguration`` objects (admissionregistration.k8s.io/v1), selects the
webhooks whose ``rules`` (operations, apiGroups, apiVersions, resources incl.
``plural/sub``, ``*``, ``*/sub``, ``*/*``; scope), ``matchPolicy``, ``namespaceSelector``
and ``objectSelector`` match, and POSTs an ``admission.k8s.io/v1`` ``AdmissionReview`` to
each ``clientConfig.url`` over HTTPS, verified with ``clientConfig.caBundle``.

As the real server: mutating webhooks run one after another in the order of
configuration name then list position, their ``JSONPatch`` applied in turn, with one
reinvocation round for ``reinvocationPolicy: IfNeeded``; validating webhooks run in
parallel and see the final object. ``failurePolicy`` (default ``Fail``), ``timeoutSeconds``
(default 10, ``?timeout=10s`` on the URL), ``sideEffects`` on dry-run (400 for
``Some``/``Unknown``), denials worded ``admission webhook "NAME" denied the request: MSG``
with the response's ``status.code`` (403 when below 400), unreachable webhooks with
``Fail`` as a 500 ``InternalError`` ``failed calling webhook "NAME": ...``, and
``warnings`` passed on as ``Warning`` headers. Webhook configurations themselves are never
sent to webhooks.

The calls are awaited on the emulator's event loop, which keeps serving other requests
meanwhile, so a webhook that calls back into the API (a SubjectAccessReview, a GET) works.

``clientConfig.service`` cannot be resolved without cluster DNS: map it with
:attr:`WebhookCaller.services` (``emu.webhook_services[(namespace, name)] = "https://127.0.0.1:PORT"``);
the path and TLS server name (``NAME.NAMESPACE.svc``) come from the configuration, the
port from the map. ``matchConditions`` (CEL) are not evaluated: the webhook is called.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import dataclasses
import functools
import json
import logging
import os
import ssl
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from kubeemu import errors, patching, selectors
from kubeemu.cluster import AdmissionRequest, Cluster, Obj

logger = logging.getLogger(__name__)

_GROUP = 'admissionregistration.k8s.io'
_CONFIGS = {'mutating': (_GROUP, 'mutatingwebhookconfigurations'),
            'validating': (_GROUP, 'validatingwebhookconfigurations')}


@dataclasses.dataclass(frozen=True)
class WebhookCall:
    """One call made (for assertions): which webhook, for what, and how it ended."""
    webhook: str
    phase: str
    operation: str
    resource: str
    subresource: str | None
    name: str
    namespace: str | None
    user: str
    outcome: str  # allowed | patched | denied | failed | ignored


class CallFailedError(Exception):
    """The webhook could not be called or answered nonsense (``failurePolicy`` decides)."""


def rule_matches(rule: Mapping[str, Any], operation: str, group: str, version: str, resource: str,
                 subresource: str | None, namespaced: bool) -> bool:
    """One ``RuleWithOperations`` against a request, as the apiserver's rule matcher reads it."""
    operations = rule.get('operations') or []
    if '*' not in operations and operation not in operations:
        return False
    groups, versions = rule.get('apiGroups') or [], rule.get('apiVersions') or []
    if '*' not in groups and group not in groups:
        return False
    if '*' not in versions and version not in versions:
        return False
    scope = rule.get('scope') or '*'
    if (scope == 'Cluster' and namespaced) or (scope == 'Namespaced' and not namespaced):
        return False
    for item in rule.get('resources') or []:
        if item == '*/*':
            return True
        res, slash, sub = item.partition('/')
        if not slash:
            if subresource is None and res in ('*', resource):
                return True
        elif subresource is not None and res in ('*', resource) and sub in ('*', subresource):
            return True
    return False


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector``: empty or absent matches everything."""
    if not selector:
        return True
    requirements = selectors.parse_label_dict(selector.get('matchLabels'), selector.get('matchExpressions'))
    return all(r.matches(labels) for r in requirements)


def _labels(obj: Mapping[str, Any] | None) -> dict[str, str]:
    return dict(((obj or {}).get('metadata') or {}).get('labels') or {})


def denial(webhook: str, status: Mapping[str, Any] | None) -> errors.StatusError:
    """The error a webhook's ``allowed: false`` becomes (the apiserver's ``ToStatusErr``)."""
    status = dict(status or {})
    raw_code = status.get('code')
    code = raw_code if isinstance(raw_code, int) and raw_code >= 400 else 403
    reason = str(status.get('reason') or '')
    denied_by = f'admission webhook "{webhook}" denied the request'
    if status.get('message'):
        message = f'{denied_by}: {status["message"]}'
    elif reason:
        message = f'{denied_by}: {reason}'
    else:
        message = f'{denied_by} without explanation'
    details = status.get('details') if isinstance(status.get('details'), dict) else None
    return errors.StatusError(code, reason, message, details)


def _failure(webhook: str, why: str) -> errors.StatusError:
    text = f'failed calling webhook "{webhook}": {why}'
    return errors.StatusError(500, 'InternalError', f'Internal error occurred: {text}', {'causes': [{'message': text}]})


class WebhookCaller:
    """Calls the admission webhooks of the stored configurations; see the module docstring."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.services: dict[tuple[str, str], str] = {}
        self.calls: list[WebhookCall] = []

    # --- selection -------------------------------------------------------------------------------

    def _webhooks(self, phase: str) -> list[Obj]:
        configs = self.cluster.objects.get(_CONFIGS[phase], {})
        hooks: list[Obj] = []
        for _, config in sorted(configs.items()):
            for hook in config.get('webhooks') or []:
                if isinstance(hook, dict) and hook.get('name'):
                    hooks.append(hook)
        return hooks

    def _match_version(self, hook: Mapping[str, Any], request: AdmissionRequest) -> str | None:
        """The version the webhook is called with, or None if it does not match the request."""
        info = request.info
        candidates = [request.version]
        if (hook.get('matchPolicy') or 'Equivalent') == 'Equivalent':
            candidates += [v for v in info.versions if v != request.version]
        for version in candidates:
            for rule in hook.get('rules') or []:
                if isinstance(rule, dict) and rule_matches(rule, request.operation, info.group, version,
                                                           info.plural, request.subresource, info.namespaced):
                    return version
        return None

    def _selected(self, hook: Mapping[str, Any], request: AdmissionRequest) -> bool:
        if request.info.key == ('', 'namespaces'):
            ns_labels = _labels(request.new if request.new is not None else request.old)
            if not selector_matches(hook.get('namespaceSelector'), ns_labels):
                return False
        elif request.info.namespaced:
            ns = self.cluster.objects[('', 'namespaces')].get(('', request.namespace or ''))
            if not selector_matches(hook.get('namespaceSelector'), _labels(ns)):
                return False
        object_selector = hook.get('objectSelector')
        if not object_selector:
            return True
        candidates = [o for o in (request.new, request.old) if o is not None]
        return any(selector_matches(object_selector, _labels(o)) for o in candidates)

    # --- the phases ------------------------------------------------------------------------------

    async def admit(self, request: AdmissionRequest) -> tuple[Obj | None, list[str]]:
        """Answer one phase: the (mutated) object and the webhooks' warnings; raise ``StatusError`` to deny."""
        new = self.cluster.admit_in_process(request)
        if request.info.key in _CONFIGS.values():
            return new, []
        request = dataclasses.replace(request, new=new)
        matched = [(h, v) for h in self._webhooks(request.phase)
                   if (v := self._match_version(h, request)) is not None and self._selected(h, request)]
        if not matched:
            return new, []
        for hook, _ in matched:
            if request.dry_run and hook.get('sideEffects') not in ('None', 'NoneOnDryRun'):
                raise errors.bad_request(f'admission webhook "{hook["name"]}" does not support dry run')
        warnings: list[str] = []
        if request.phase == 'validating':
            results = await asyncio.gather(*(self._one(h, v, request, warnings) for h, v in matched),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            return new, warnings
        seen: dict[str, str] = {}
        obj = new
        for hook, version in matched:
            seen[hook['name']] = json.dumps(obj, sort_keys=True)
            obj = await self._one(hook, version, dataclasses.replace(request, new=obj), warnings)
        final = json.dumps(obj, sort_keys=True)
        for hook, version in matched:  # one reinvocation round for IfNeeded webhooks that saw an older object
            if hook.get('reinvocationPolicy') == 'IfNeeded' and seen[hook['name']] != final:
                obj = await self._one(hook, version, dataclasses.replace(request, new=obj), warnings)
        return obj, warnings

    async def _one(self, hook: Mapping[str, Any], version: str, request: AdmissionRequest,
                   warnings: list[str]) -> Obj | None:
        name = str(hook['name'])
        review = self._review(request, version)
        record = functools.partial(WebhookCall, name, request.phase, request.operation, request.info.plural,
                                   request.subresource, request.name, request.namespace, request.user.username)
        try:
            response = await self._call(hook, review)
        except CallFailedError as exc:
            if (hook.get('failurePolicy') or 'Fail') == 'Ignore':
                logger.info('Failed calling webhook %r, failing open: %s', name, exc)
                self.calls.append(record('ignored'))
                return request.new
            self.calls.append(record('failed'))
            raise _failure(name, str(exc)) from exc
        warnings.extend(str(w) for w in response.get('warnings') or [])
        if not response.get('allowed'):
            self.calls.append(record('denied'))
            raise denial(name, response.get('status'))
        patch = response.get('patch')
        if request.phase != 'mutating' or not patch or request.new is None:
            self.calls.append(record('allowed'))
            return request.new
        if response.get('patchType') != 'JSONPatch':
            raise _failure(name, f'unsupported patch type "{response.get("patchType")}"')
        try:
            operations = json.loads(base64.b64decode(patch))
            patched = patching.json_patch(copy.deepcopy(request.new), operations)
        except (ValueError, errors.StatusError) as exc:
            message = exc.message if isinstance(exc, errors.StatusError) else str(exc)
            raise errors.StatusError(500, 'InternalError', f'Internal error occurred: JSON patch from webhook '
                                     f'"{name}" could not be applied: {message}') from exc
        if not isinstance(patched, dict):
            raise errors.StatusError(500, 'InternalError', f'Internal error occurred: the patch of webhook '
                                     f'"{name}" did not leave an object')
        self.calls.append(record('patched'))
        return patched

    # --- the wire --------------------------------------------------------------------------------

    def _review(self, request: AdmissionRequest, version: str) -> Obj:
        info = request.info
        kind = {'group': info.group, 'version': version, 'kind': info.kind}
        resource = {'group': info.group, 'version': version, 'resource': info.plural}
        body: Obj = {
            'uid': str(uuid.uuid4()),
            'kind': kind, 'resource': resource,
            'requestKind': {**kind, 'version': request.version},
            'requestResource': {**resource, 'version': request.version},
            'name': request.name,
            'operation': request.operation,
            'userInfo': request.user.to_user_info(),
            'object': self._as_version(request.new, info.api_version(version)),
            'oldObject': self._as_version(request.old, info.api_version(version)),
            'dryRun': request.dry_run,
            'options': copy.deepcopy(request.options),
        }
        if info.namespaced and request.namespace:
            body['namespace'] = request.namespace
        if request.subresource:
            body['subResource'] = body['requestSubResource'] = request.subresource
        return {'apiVersion': 'admission.k8s.io/v1', 'kind': 'AdmissionReview', 'request': body}

    @staticmethod
    def _as_version(obj: Obj | None, api_version: str) -> Obj | None:
        if obj is None:
            return None
        out = copy.deepcopy(obj)
        out['apiVersion'] = api_version
        return out

    def _target(self, config: Mapping[str, Any], timeout: int) -> tuple[str, str | None]:
        """The URL to POST to (with ``?timeout=``) and the TLS server name if it differs from the host."""
        if config.get('url'):
            url, server_name = str(config['url']), None
        elif isinstance(config.get('service'), dict):
            service = config['service']
            key = (str(service.get('namespace', '')), str(service.get('name', '')))
            base = self.services.get(key)
            if base is None:
                raise CallFailedError(f'failed to call webhook: service "{key[1]}.{key[0]}.svc" cannot be '
                                      f'resolved by kubeemu: map it in Emulator.webhook_services')
            url = base.rstrip('/') + str(service.get('path') or '/')
            server_name = f'{key[1]}.{key[0]}.svc'
        else:
            raise CallFailedError('failed to call webhook: neither url nor service in clientConfig')
        if urlsplit(url).scheme != 'https':
            raise CallFailedError(f'failed to call webhook: "https" is the only allowed URL scheme, got {url!r}')
        return url + ('&' if '?' in url else '?') + f'timeout={timeout}s', server_name

    async def _call(self, hook: Mapping[str, Any], review: Obj) -> Obj:
        config = hook.get('clientConfig') or {}
        timeout = int(hook.get('timeoutSeconds') or 10)
        url, server_name = self._target(config, timeout)
        try:
            context = ssl.create_default_context()
            if config.get('caBundle'):
                context = ssl.create_default_context(cadata=base64.b64decode(config['caBundle']).decode())
        except (ValueError, ssl.SSLError) as exc:
            raise CallFailedError(f'failed to call webhook: invalid caBundle: {exc}') from exc
        host = urlsplit(url).netloc
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                    session.post(url, json=review, ssl=context, server_hostname=server_name,
                                 headers={'Accept': 'application/json'}) as response:
                text = await response.text()
                status = response.status
        except aiohttp.ClientConnectorCertificateError as exc:
            raise CallFailedError(f'failed to call webhook: Post "{url}": tls: failed to verify certificate: '
                                  f'x509: {exc.certificate_error}') from exc
        except aiohttp.ClientConnectorError as exc:
            why = os.strerror(exc.errno).lower() if exc.errno else str(exc.os_error)
            raise CallFailedError(f'failed to call webhook: Post "{url}": dial tcp {host}: connect: {why}') from exc
        except TimeoutError as exc:
            raise CallFailedError(f'failed to call webhook: Post "{url}": context deadline exceeded') from exc
        except aiohttp.ClientError as exc:
            raise CallFailedError(f'failed to call webhook: Post "{url}": {exc}') from exc
        if not 200 <= status < 300:
            raise CallFailedError(f'failed to call webhook: the server responded with status code {status}: '
                                  f'{text[:200]}')
        try:
            answer = json.loads(text)
        except ValueError as exc:
            raise CallFailedError(f'failed to call webhook: the response is not JSON: {exc}') from exc
        return self._check(answer, review)

    @staticmethod
    def _check(answer: Any, review: Obj) -> Obj:
        if not isinstance(answer, dict) or answer.get('kind') != 'AdmissionReview' \
                or answer.get('apiVersion') != 'admission.k8s.io/v1':
            got = f'{answer.get("apiVersion")}, Kind={answer.get("kind")}' if isinstance(answer, dict) else '?'
            raise CallFailedError(f'expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, '
                                  f'got {got}')
        response = answer.get('response')
        if not isinstance(response, dict):
            raise CallFailedError('webhook response was absent')
        expected = review['request']['uid']
        if response.get('uid') != expected:
            raise CallFailedError(f'expected response.uid="{expected}", got "{response.get("uid")}"')
        return response

