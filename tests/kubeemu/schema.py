"""
Structural-schema processing of custom resources, as apiextensions-apiserver does it.

For the ``openAPIV3Schema`` of the served version, in this order:

1. pruning: fields not specified by the schema are dropped, except under
   ``x-kubernetes-preserve-unknown-fields: true``, ``additionalProperties`` maps,
   ``x-kubernetes-int-or-string`` and the root ``apiVersion``/``kind``/``metadata``;
   ``x-kubernetes-embedded-resource`` objects keep ``apiVersion``/``kind`` and
   their ``metadata`` is reduced to the ObjectMeta fields; the dropped paths are
   reported (for ``fieldValidation=Strict|Warn``);
2. defaulting: a ``null`` in a non-nullable property is dropped first, then a
   missing property gets a deep copy of its ``default``, recursively through
   objects, maps and arrays;
3. validation: type, nullable, enum, pattern, format, minimum/maximum (with the
   exclusive flags), multipleOf, min/maxLength, min/maxItems, uniqueItems,
   min/maxProperties, required, allOf/anyOf/oneOf/not. Each violation is a
   ``details.causes[]`` entry with a ``field`` path such as ``spec.dataset.uri``
   or ``spec.items[0].name`` and the real server's wording.

CEL rules (``x-kubernetes-validations``) are NOT evaluated here.
"""
from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import re
from collections.abc import Mapping
from typing import Any

Schema = Mapping[str, Any]
Cause = dict[str, str]

_OBJECT_META_FIELDS = frozenset({
    'name', 'generateName', 'namespace', 'labels', 'annotations', 'finalizers', 'ownerReferences',
    'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
    'deletionGracePeriodSeconds', 'managedFields', 'selfLink',
})


def _join(path: str, key: str) -> str:
    return f'{path}.{key}' if path else key


def prune(value: Any, schema: Schema, path: str = '', *, root: bool = True) -> list[str]:
    """Drop unknown fields in place; return the dotted paths of what was dropped."""
    dropped: list[str] = []
    if isinstance(value, dict):
        if schema.get('x-kubernetes-int-or-string'):
            return dropped
        properties: Mapping[str, Any] = schema.get('properties') or {}
        additional = schema.get('additionalProperties')
        preserve = bool(schema.get('x-kubernetes-preserve-unknown-fields'))
        embedded = bool(schema.get('x-kubernetes-embedded-resource'))
        for key in list(value):
            sub_path = _join(path, key)
            if (root or embedded) and key in ('apiVersion', 'kind'):
                continue
            if (root or embedded) and key == 'metadata':
                if isinstance(value[key], dict) and embedded:
                    for meta_key in list(value[key]):
                        if meta_key not in _OBJECT_META_FIELDS:
                            del value[key][meta_key]
                            dropped.append(_join(sub_path, meta_key))
                continue
            if key in properties:
                dropped += prune(value[key], properties[key], sub_path, root=False)
            elif isinstance(additional, Mapping):
                dropped += prune(value[key], additional, sub_path, root=False)
            elif additional is True or preserve:
                continue
            else:
                del value[key]
                dropped.append(sub_path)
    elif isinstance(value, list) and isinstance(schema.get('items'), Mapping):
        for index, item in enumerate(value):
            dropped += prune(item, schema['items'], f'{path}[{index}]', root=False)
    return dropped


def apply_defaults(value: Any, schema: Schema) -> None:
    """Fill in ``default`` values in place (objects, maps and arrays, recursively)."""
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get('properties') or {}
        for key, sub_schema in properties.items():
            if key in value and value[key] is None and not sub_schema.get('nullable'):
                # The real server prunes nulls of non-nullable fields before defaulting (k8s >= 1.20).
                del value[key]
            missing = key not in value
            if 'default' in sub_schema and missing:
                value[key] = copy.deepcopy(sub_schema['default'])
            if key in value:
                apply_defaults(value[key], sub_schema)
        additional = schema.get('additionalProperties')
        if isinstance(additional, Mapping):
            for key in list(value):
                if key not in properties:
                    if value[key] is None and not additional.get('nullable'):
                        del value[key]
                        continue
                    apply_defaults(value[key], additional)
    elif isinstance(value, list) and isinstance(schema.get('items'), Mapping):
        for item in value:
            apply_defaults(item, schema['items'])


def _render(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value is None:
        return 'null'
    if isinstance(value, (dict, list)):
        return '"' + type(value).__name__.replace('dict', 'object').replace('list', 'array') + '"'
    return str(value)


def _type_of(value: Any) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, list):
        return 'array'
    return 'object'


def _type_ok(value: Any, expected: str) -> bool:
    actual = _type_of(value)
    if expected == 'number':
        return actual in ('integer', 'number')
    if expected == 'integer' and actual == 'number':
        return float(value).is_integer()
    return actual == expected


_RFC3339 = re.compile(r'^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$')
_HOSTNAME = re.compile(r'^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?'
                       r'(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$')
_EMAIL = re.compile(r'^[^@\s]+@[^@\s]+\.[^@\s]+$')
_DURATION = re.compile(r'^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$')


def _format_ok(value: str, fmt: str) -> bool:
    try:
        if fmt == 'date':
            datetime.date.fromisoformat(value)
        elif fmt in ('date-time', 'datetime'):
            return bool(_RFC3339.match(value))
        elif fmt in ('uuid', 'uuid3', 'uuid4', 'uuid5'):
            return bool(re.fullmatch(r'[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}', value))
        elif fmt == 'byte':
            base64.b64decode(value, validate=True)
        elif fmt == 'ipv4':
            ipaddress.IPv4Address(value)
        elif fmt == 'ipv6':
            ipaddress.IPv6Address(value)
        elif fmt == 'cidr':
            ipaddress.ip_network(value, strict=False)
        elif fmt == 'hostname':
            return bool(_HOSTNAME.match(value))
        elif fmt == 'email':
            return bool(_EMAIL.match(value))
        elif fmt == 'duration':
            return bool(_DURATION.match(value))
        elif fmt == 'uri':
            return bool(re.match(r'^[A-Za-z][A-Za-z0-9+.-]*:', value))
    except ValueError:
        return False
    return True


def validate(value: Any, schema: Schema, path: str = '') -> list[Cause]:
    """Return the list of violations (empty if valid) as Status ``causes``."""
    causes: list[Cause] = []
    field = path or '<root>'

    def fail(reason: str, message: str) -> None:
        causes.append({'reason': reason, 'message': message, 'field': field})

    if value is None:
        if not schema.get('nullable') and schema.get('type'):
            fail('FieldValueTypeInvalid', f'Invalid value: "null": {field} in body must be of type '
                                          f'{schema["type"]}: "null"')
        return causes

    if schema.get('x-kubernetes-int-or-string'):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            fail('FieldValueTypeInvalid', f'Invalid value: {_render(value)}: {field} in body must be '
                                          f'of type integer or string: {_render(value)}')
            return causes
    elif (expected := schema.get('type')) and not _type_ok(value, expected):
        fail('FieldValueTypeInvalid', f'Invalid value: {_render(value)}: {field} in body must be of '
                                      f'type {expected}: "{_type_of(value)}"')
        return causes

    if 'enum' in schema and value not in schema['enum']:
        supported = ', '.join(_render(v) for v in schema['enum'])
        fail('FieldValueNotSupported', f'Unsupported value: {_render(value)}: supported values: {supported}')

    if isinstance(value, str):
        if 'maxLength' in schema and len(value) > schema['maxLength']:
            fail('FieldValueTooLong', f'Too long: may not be more than {schema["maxLength"]} bytes')
        if 'minLength' in schema and len(value) < schema['minLength']:
            fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body should be at least '
                                      f'{schema["minLength"]} chars long')
        if 'pattern' in schema and not re.search(schema['pattern'], value):
            fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body should match '
                                      f'\'{schema["pattern"]}\'')
        if 'format' in schema and not _format_ok(value, schema['format']):
            fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body must be of type '
                                      f'{schema["format"]}: {_render(value)}')

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 'minimum' in schema:
            low, exclusive = schema['minimum'], schema.get('exclusiveMinimum') is True
            if value < low or (exclusive and value == low):
                word = 'greater than' if exclusive else 'greater than or equal to'
                fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body should be '
                                          f'{word} {low}')
        if 'maximum' in schema:
            high, exclusive = schema['maximum'], schema.get('exclusiveMaximum') is True
            if value > high or (exclusive and value == high):
                word = 'less than' if exclusive else 'less than or equal to'
                fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body should be '
                                          f'{word} {high}')
        if schema.get('multipleOf') and (value / schema['multipleOf']) % 1 != 0:
            fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body should be a '
                                      f'multiple of {schema["multipleOf"]}')

    if isinstance(value, list):
        if 'maxItems' in schema and len(value) > schema['maxItems']:
            fail('FieldValueTooMany', f'Too many: {len(value)}: must have at most {schema["maxItems"]} items')
        if 'minItems' in schema and len(value) < schema['minItems']:
            fail('FieldValueInvalid', f'Invalid value: {len(value)}: {field} in body should have at least '
                                      f'{schema["minItems"]} items')
        if schema.get('uniqueItems') and len({repr(v) for v in value}) != len(value):
            fail('FieldValueDuplicate', f'Duplicate value: {field} in body shouldn\'t contain duplicates')
        if isinstance(schema.get('items'), Mapping):
            for index, item in enumerate(value):
                causes += validate(item, schema['items'], f'{path}[{index}]')

    if isinstance(value, dict):
        for key in schema.get('required') or []:
            if key not in value:
                causes.append({'reason': 'FieldValueRequired', 'message': 'Required value',
                               'field': _join(path, key)})
        if 'maxProperties' in schema and len(value) > schema['maxProperties']:
            fail('FieldValueTooMany', f'Too many: {len(value)}: must have at most '
                                      f'{schema["maxProperties"]} items')
        if 'minProperties' in schema and len(value) < schema['minProperties']:
            fail('FieldValueInvalid', f'Invalid value: {len(value)}: {field} in body should have at least '
                                      f'{schema["minProperties"]} properties')
        properties: Mapping[str, Any] = schema.get('properties') or {}
        additional = schema.get('additionalProperties')
        for key, item in value.items():
            if key == 'metadata' and not path:
                continue  # ObjectMeta is validated by the server itself, not by the CRD schema.
            if key in properties:
                causes += validate(item, properties[key], _join(path, key))
            elif isinstance(additional, Mapping):
                causes += validate(item, additional, _join(path, key))

    for sub_schema in schema.get('allOf') or []:
        causes += validate(value, sub_schema, path)
    if schema.get('anyOf') and not any(not validate(value, s, path) for s in schema['anyOf']):
        fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body must match at least '
                                  f'one schema in anyOf')
    if schema.get('oneOf') and sum(not validate(value, s, path) for s in schema['oneOf']) != 1:
        fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body must match exactly '
                                  f'one schema in oneOf')
    if isinstance(schema.get('not'), Mapping) and not validate(value, schema['not'], path):
        fail('FieldValueInvalid', f'Invalid value: {_render(value)}: {field} in body must not match '
                                  f'the schema in not')
    return causes


def has_cel_rules(schema: Any) -> bool:
    """Whether any CEL rules are present (they are accepted but never evaluated)."""
    if isinstance(schema, Mapping):
        return 'x-kubernetes-validations' in schema or any(has_cel_rules(v) for v in schema.values())
    if isinstance(schema, list):
        return any(has_cel_rules(v) for v in schema)
    return False
