"""
The four PATCH flavours of the Kubernetes API, applied to plain JSON-like dicts.

* JSON merge patch (RFC 7386), ``application/merge-patch+json``.
* JSON patch (RFC 6902), ``application/json-patch+json``, all six ops; any
  failure (a failed ``test``, a missing path) is a 422 as on the real server.
* Strategic merge patch, ``application/strategic-merge-patch+json``: merge-patch
  semantics, plus lists of objects merged by a merge key chosen by the list's
  field name (``containers``/``env``/``volumes``… by ``name``, ``volumeMounts``
  by ``mountPath``, ``ports`` by ``containerPort`` or ``port``, ``conditions``
  by ``type``, ``ownerReferences`` by ``uid``), ``metadata.finalizers`` merged
  as a set, and the ``$patch: delete|replace`` and
  ``$deleteFromPrimitiveList/<field>`` directives. This approximates the Go
  struct tags of the built-in types; it does not read them.
* Server-side apply (``application/apply-patch+yaml``) is approximated by
  :func:`apply_merge`: the applied configuration is merged into the live object
  (strategic rules for built-ins, maps merged and lists replaced for custom
  resources); fields dropped from a later apply are NOT removed and no field
  ownership or conflicts are tracked.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from kubeemu import errors

_MERGE_KEYS: dict[str, tuple[str, ...]] = {
    'containers': ('name',), 'initContainers': ('name',), 'ephemeralContainers': ('name',),
    'env': ('name',), 'volumes': ('name',), 'imagePullSecrets': ('name',), 'envFrom': (),
    'volumeMounts': ('mountPath',), 'volumeDevices': ('devicePath',), 'ports': ('containerPort', 'port'),
    'conditions': ('type',), 'ownerReferences': ('uid',), 'hostAliases': ('ip',),
    'topologySpreadConstraints': ('topologyKey',), 'resourceClaims': ('name',),
}
_SET_LISTS = frozenset({'finalizers'})


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: returns a new value; ``null`` deletes, objects merge, everything else replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unescape(token: str) -> str:
    return token.replace('~1', '/').replace('~0', '~')


def _split_pointer(pointer: str) -> list[str]:
    if pointer == '':
        return []
    if not pointer.startswith('/'):
        raise errors.patch_invalid(f'the JSON pointer "{pointer}" must start with "/"')
    return [_unescape(token) for token in pointer[1:].split('/')]


def _resolve(doc: Any, tokens: list[str], pointer: str) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise errors.patch_invalid(f'jsonpatch: the path "{pointer}" does not exist in the object')
    return node


def _index(container: list[Any], token: str, pointer: str, *, inserting: bool) -> int:
    if token == '-' and inserting:
        return len(container)
    if not token.isdigit() or int(token) > len(container) - (0 if inserting else 1):
        raise errors.patch_invalid(f'jsonpatch: the array index in "{pointer}" is out of bounds')
    return int(token)


def json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 on a deep copy of ``doc``; raises 422 StatusError on any failing operation."""
    if not isinstance(ops, list):
        raise errors.bad_request('json: cannot unmarshal object into Go value of type jsonpatch.Patch')
    doc = copy.deepcopy(doc)

    def add(pointer: str, value: Any) -> None:
        nonlocal doc
        tokens = _split_pointer(pointer)
        if not tokens:
            doc = value
            return
        parent = _resolve(doc, tokens[:-1], pointer)
        if isinstance(parent, dict):
            parent[tokens[-1]] = value
        elif isinstance(parent, list):
            parent.insert(_index(parent, tokens[-1], pointer, inserting=True), value)
        else:
            raise errors.patch_invalid(f'jsonpatch: cannot add at "{pointer}": the parent is not a container')

    def remove(pointer: str) -> Any:
        tokens = _split_pointer(pointer)
        if not tokens:
            raise errors.patch_invalid('jsonpatch: cannot remove the whole document')
        parent = _resolve(doc, tokens[:-1], pointer)
        if isinstance(parent, dict):
            if tokens[-1] not in parent:
                raise errors.json_patch_failed()
            return parent.pop(tokens[-1])
        if isinstance(parent, list):
            return parent.pop(_index(parent, tokens[-1], pointer, inserting=False))
        raise errors.patch_invalid(f'jsonpatch: the path "{pointer}" does not exist in the object')

    for op in ops:
        if not isinstance(op, Mapping) or 'op' not in op or 'path' not in op:
            raise errors.bad_request(f'jsonpatch: malformed operation {op!r}')
        kind, path = op['op'], op['path']
        if kind in ('add', 'replace', 'test') and 'value' not in op:
            raise errors.patch_invalid(f'jsonpatch: "{kind}" operation has no "value" field')
        if kind == 'add':
            add(path, copy.deepcopy(op['value']))
        elif kind == 'remove':
            remove(path)
        elif kind == 'replace':
            remove(path)  # must exist
            add(path, copy.deepcopy(op['value']))
        elif kind == 'move':
            add(path, remove(op['from']))
        elif kind == 'copy':
            add(path, copy.deepcopy(_resolve(doc, _split_pointer(op['from']), op['from'])))
        elif kind == 'test':
            try:
                actual = _resolve(doc, _split_pointer(path), path)
            except errors.StatusError:
                actual = None
            if actual != op['value']:
                raise errors.json_patch_failed()
        else:
            raise errors.patch_invalid(f'jsonpatch: unexpected operation "{kind}"')
    return doc


def _merge_key(field: str, items: list[Any]) -> str | None:
    for key in _MERGE_KEYS.get(field, ()):
        if any(isinstance(item, Mapping) and key in item for item in items):
            return key
    return None


def strategic_merge(target: Any, patch: Any, *, field: str = '', null_deletes: bool = True) -> Any:
    """Strategic merge of ``patch`` into ``target``, returning a new value (see the module docstring)."""
    if isinstance(patch, Mapping):
        if patch.get('$patch') == 'replace':
            return {k: copy.deepcopy(v) for k, v in patch.items() if k != '$patch'}
        if patch.get('$patch') == 'delete':
            return None
        result = dict(target) if isinstance(target, Mapping) else {}
        for key, value in patch.items():
            if key.startswith('$deleteFromPrimitiveList/'):
                name = key.split('/', 1)[1]
                result[name] = [v for v in result.get(name) or [] if v not in value]
            elif key.startswith('$'):
                continue  # $setElementOrder, $retainKeys: ordering/retention hints, ignored
            elif value is None and null_deletes:
                result.pop(key, None)
            else:
                merged = strategic_merge(result.get(key), value, field=key, null_deletes=null_deletes)
                if merged is None and isinstance(value, Mapping):
                    result.pop(key, None)
                else:
                    result[key] = merged
        return result
    if isinstance(patch, list):
        current = list(target) if isinstance(target, list) else []
        if field in _SET_LISTS:
            return current + [v for v in patch if v not in current]
        merge_key = _merge_key(field, patch + current)
        if merge_key is None:
            return copy.deepcopy(patch)
        result_list = [copy.deepcopy(item) for item in current]
        for item in patch:
            if not isinstance(item, Mapping) or merge_key not in item:
                continue
            position = next((i for i, old in enumerate(result_list)
                             if isinstance(old, Mapping) and old.get(merge_key) == item[merge_key]), None)
            if item.get('$patch') == 'delete':
                if position is not None:
                    del result_list[position]
            elif position is None:
                result_list.append({k: copy.deepcopy(v) for k, v in item.items() if k != '$patch'})
            else:
                result_list[position] = strategic_merge(result_list[position], item, null_deletes=null_deletes)
        return result_list
    return copy.deepcopy(patch)


def apply_merge(live: Any, applied: Any, *, builtin: bool) -> Any:
    """Approximate server-side apply: merge the applied configuration into the live object."""
    if builtin:
        return strategic_merge(live, applied, null_deletes=True)
    return merge_patch(live, applied)
