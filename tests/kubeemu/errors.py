"""
Kubernetes-shaped API errors raised by the emulator's request handling.

Every failure the emulated API server can answer is a :class:`StatusError`
carrying the HTTP code, the ``reason`` and the ``details`` of a ``v1 Status``
object, worded as the real kube-apiserver words them, so clients (Kopf, the
``kubernetes`` client, kubectl) interpret them exactly as in a real cluster.
"""
from __future__ import annotations

from typing import Any


class StatusError(Exception):
    """An API failure that renders as a ``v1 Status`` with a non-2xx code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.audit: tuple[str, Any] | None = None  # (verb, target) of the failed request, for the audit trail

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            'kind': 'Status',
            'apiVersion': 'v1',
            'metadata': {},
            'status': 'Failure',
            'message': self.message,
            'reason': self.reason,
            'code': self.code,
        }
        if not self.reason:  # an error the server did not classify (StatusReasonUnknown) has none
            del status['reason']
        if self.details is not None:
            status['details'] = self.details
        return status


def qualified(group: str, plural: str) -> str:
    """The ``plural.group`` name the real server uses in messages (just ``plural`` for the core group)."""
    return f'{plural}.{group}' if group else plural


def not_found(group: str, plural: str, name: str) -> StatusError:
    return StatusError(404, 'NotFound', f'{qualified(group, plural)} "{name}" not found',
                       {'name': name, 'group': group, 'kind': plural})


def already_exists(group: str, plural: str, name: str) -> StatusError:
    return StatusError(409, 'AlreadyExists', f'{qualified(group, plural)} "{name}" already exists',
                       {'name': name, 'group': group, 'kind': plural})


def conflict(group: str, plural: str, name: str, why: str | None = None) -> StatusError:
    why = why or 'the object has been modified; please apply your changes to the latest version and try again'
    return StatusError(409, 'Conflict', f'Operation cannot be fulfilled on {qualified(group, plural)} "{name}": {why}',
                       {'name': name, 'group': group, 'kind': plural})


def invalid(group: str, kind: str, name: str, causes: list[dict[str, str]]) -> StatusError:
    """422 Invalid with ``details.causes[]``, each with ``reason``, ``message`` and ``field``."""
    rendered = [f"{c['field']}: {c['message']}" if c.get('field') else c['message'] for c in causes]
    summary = rendered[0] if len(rendered) == 1 else '[' + ', '.join(rendered) + ']'
    gk = f'{kind}.{group}' if group else kind
    return StatusError(422, 'Invalid', f'{gk} "{name}" is invalid: {summary}',
                       {'name': name, 'group': group, 'kind': kind, 'causes': causes})


def bad_request(message: str) -> StatusError:
    return StatusError(400, 'BadRequest', message)


def forbidden(message: str, details: dict[str, Any] | None = None) -> StatusError:
    return StatusError(403, 'Forbidden', message, details)


def unauthorized() -> StatusError:
    return StatusError(401, 'Unauthorized', 'Unauthorized')


def method_not_allowed(verb: str, group: str, plural: str) -> StatusError:
    return StatusError(405, 'MethodNotAllowed',
                       'the server does not allow this method on the requested resource',
                       {'group': group, 'kind': plural, 'causes': [{'reason': 'UnexpectedServerResponse',
                                                                     'message': verb}]})


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(415, 'UnsupportedMediaType', f'the body of the request was in an unknown format - '
                       f'accepted media types include: application/json-patch+json, '
                       f'application/merge-patch+json, application/apply-patch+yaml '
                       f'(got {content_type!r})')


def gone(requested: int, oldest: int) -> StatusError:
    return StatusError(410, 'Expired', f'too old resource version: {requested} ({oldest})')


def endpoint_not_found() -> StatusError:
    return StatusError(404, 'NotFound', 'the server could not find the requested resource', {})


def json_patch_failed() -> StatusError:
    """A JSON patch op that fails on the object (a ``test`` that does not hold, a ``remove`` of a missing
    path): 422 with exactly the real server's words and empty details, whatever the op was."""
    return StatusError(422, 'Invalid', 'the server rejected our request due to an error in our request', {})


def patch_invalid(message: str) -> StatusError:
    """A JSON patch that cannot be applied (including a failed ``test`` op): 422 as the real server says."""
    return StatusError(422, 'Invalid', message,
                       {'causes': [{'reason': 'FieldValueInvalid', 'message': message, 'field': 'patch'}]})
