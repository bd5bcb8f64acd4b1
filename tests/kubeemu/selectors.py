"""
Label and field selectors as the Kubernetes API parses and matches them.

Label selectors support ``=``, ``==``, ``!=``, ``in (…)``, ``notin (…)``,
``key`` (exists), ``!key`` (does not exist) and ``>``/``<`` on integers.
Field selectors support ``=``, ``==`` and ``!=`` on a per-resource set of
dotted fields (always ``metadata.name`` and ``metadata.namespace``).
A malformed selector or an unsupported field is a 400 BadRequest.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from kubeemu import errors

_KEY = re.compile(r'^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?'
                  r'[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')
_VALUE = re.compile(r'^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$')
_SET = re.compile(r'^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)$')
_BINARY = re.compile(r'^(?P<key>[^!=<>\s]+)\s*(?P<op>==|!=|=|<|>)\s*(?P<value>\S*)$')


@dataclasses.dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # one of: =, !=, in, notin, exists, !, <, >
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == 'exists':
            return present
        if self.op == '!':
            return not present
        if self.op in ('=', 'in'):
            return present and value in self.values
        if self.op in ('!=', 'notin'):
            return not present or value not in self.values
        if self.op in ('<', '>'):
            try:
                number, bound = int(value or ''), int(self.values[0])
            except ValueError:
                return False
            return present and (number < bound if self.op == '<' else number > bound)
        raise AssertionError(self.op)  # pragma: no cover


def _split_top_level(text: str) -> list[str]:
    """Split by commas that are not inside ``(…)``."""
    parts: list[str] = []
    depth, start = 0, 0
    for index, char in enumerate(text):
        if char == '(':
            depth += 1
        elif char == ')':
            depth -= 1
        elif char == ',' and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def _check_key(key: str, selector: str) -> None:
    if not _KEY.match(key) or len(key.split('/')[-1]) > 63:
        raise errors.bad_request(f'unable to parse requirement: invalid label key "{key}" in "{selector}"')


def _check_value(value: str, selector: str) -> None:
    if not _VALUE.match(value) or len(value) > 63:
        raise errors.bad_request(f'unable to parse requirement: invalid label value: "{value}" in "{selector}"')


def parse_labels(selector: str | None) -> list[Requirement]:
    """Parse a ``labelSelector`` query parameter (400 BadRequest if malformed)."""
    requirements: list[Requirement] = []
    for part in _split_top_level(selector or ''):
        if m := _SET.match(part):
            key = m.group('key')
            values = tuple(v.strip() for v in m.group('values').split(',') if v.strip())
            _check_key(key, selector or '')
            for value in values:
                _check_value(value, selector or '')
            requirements.append(Requirement(key, m.group('op'), values))
        elif part.startswith('!'):
            key = part[1:].strip()
            _check_key(key, selector or '')
            requirements.append(Requirement(key, '!'))
        elif m := _BINARY.match(part):
            key, op, value = m.group('key'), m.group('op'), m.group('value')
            _check_key(key, selector or '')
            if op in ('<', '>'):
                if not re.fullmatch(r'-?\d+', value):
                    raise errors.bad_request(f'unable to parse requirement: for \'Gt\', \'Lt\' operators, '
                                             f'the value must be an integer in "{selector}"')
            else:
                _check_value(value, selector or '')
            requirements.append(Requirement(key, '=' if op == '==' else op, (value,)))
        elif ' ' not in part and not any(c in part for c in '=!()<>'):
            _check_key(part, selector or '')
            requirements.append(Requirement(part, 'exists'))
        else:
            raise errors.bad_request(f'unable to parse requirement: found \'{part}\', '
                                     f'expected: in, notin, =, ==, !=, gt, lt in "{selector}"')
    return requirements


def parse_label_dict(match_labels: Mapping[str, str] | None, match_expressions: list[Any] | None
                     ) -> list[Requirement]:
    """Convert a structured ``LabelSelector`` (matchLabels/matchExpressions) into requirements."""
    requirements = [Requirement(k, '=', (v,)) for k, v in (match_labels or {}).items()]
    ops = {'In': 'in', 'NotIn': 'notin', 'Exists': 'exists', 'DoesNotExist': '!'}
    for expr in match_expressions or []:
        requirements.append(Requirement(expr['key'], ops[expr['operator']], tuple(expr.get('values') or ())))
    return requirements


def match_labels(requirements: Collection[Requirement], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get('metadata') or {}).get('labels') or {}
    return all(requirement.matches(labels) for requirement in requirements)


FieldRequirement = tuple[str, bool, str]  # (dotted path, equals?, value)


def parse_fields(selector: str | None, allowed: Collection[str]) -> list[FieldRequirement]:
    """Parse a ``fieldSelector`` (400 BadRequest on syntax errors or unsupported field labels)."""
    requirements: list[FieldRequirement] = []
    for part in _split_top_level(selector or ''):
        m = re.fullmatch(r'(?P<key>[^!=\s]+)\s*(?P<op>==|!=|=)\s*(?P<value>.*)', part)
        if not m:
            raise errors.bad_request(f'invalid selector: \'{selector}\'; can\'t understand \'{part}\'')
        key = m.group('key')
        if key not in allowed:
            raise errors.bad_request(f'"{key}" is not a known field selector: only "{", ".join(sorted(allowed))}"')
        requirements.append((key, m.group('op') != '!=', m.group('value')))
    return requirements


def _dig(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for step in path.split('.'):
        value = value.get(step) if isinstance(value, Mapping) else None
    if value is None:
        return ''
    if isinstance(value, bool):
        return 'true' if value else 'false'
    return str(value)


def match_fields(requirements: Collection[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all((_dig(obj, path) == value) == equals for path, equals, value in requirements)


Matcher = Callable[[Mapping[str, Any]], bool]


def make_matcher(labels: Collection[Requirement], fields: Collection[FieldRequirement]) -> Matcher:
    def matcher(obj: Mapping[str, Any]) -> bool:
        return match_labels(labels, obj) and match_fields(fields, obj)
    return matcher
