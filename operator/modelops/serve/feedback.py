"""Feedback: the ids a server issues with its predictions, and ``POST /v2/models/NAME/feedback``, which counts labels.

:class:`Feedback` is what one worker holds when it runs with ``--feedback-keys``: the keys (re-read
when the directory changes, :mod:`modelops.serve.keys`), a :class:`~modelops.serve.tokens.Signer`
for the current key and a :class:`~modelops.serve.tokens.Verifier` for every key held, the pod's
dedup table (:mod:`modelops.serve.dedup`) and the label counters (:mod:`modelops.serve.labels`).

Nothing is kept per request: an id carries what it is about, so any worker of any replica counts
its label, and the HTTP answer names every label that was not counted and why (the results and
statuses of ``docs/contracts.md``, "POST /v2/models/NAME/feedback").
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from prometheus_client.core import Metric

from modelops.serve import dedup, keys, labels, metrics, tokens

JSON = b"content-type: application/json\r\n"
#: (status, extra header lines including content-type, body), as the app answers.
Response = tuple[int, bytes, bytes]
DEFAULT_TTL = 7 * 24 * 3600
DEFAULT_DEDUP_ENTRIES = 1 << 20
_STATUS = {
    "malformed": 400, "forged": 403, "expired": 410, "unknown_class": 422, "bad_actual": 422, "version_limit": 503,
}  # fmt: skip
_LOOKUPS_KEPT = 64


@dataclass(frozen=True)
class Settings:
    """The ``--feedback-*`` flags."""

    keys_dir: Path
    scope: str = ""
    ttl: int = DEFAULT_TTL
    dedup_entries: int = DEFAULT_DEDUP_ENTRIES


class _RefusedError(Exception):
    """One label (or every label of an item) that is not counted: its result and why."""

    def __init__(self, result: str, message: str) -> None:
        super().__init__(message)
        self.result = result
        self.message = message


@dataclass
class _Checked:
    """A verified, unexpired id (read once per request, however many of its rows are labelled)."""

    claim: tokens.Claim
    predicted: Sequence[Any]


@dataclass
class _Outcome:
    counted: int = 0
    duplicates: list[dict[str, int]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    results: dict[str, int] = field(default_factory=dict)

    def note(self, result: str) -> None:
        self.results[result] = self.results.get(result, 0) + 1


class _Classes:
    """How a JSON ``actual`` names one of an id's classes (``docs/contracts.md``)."""

    def __init__(self, classes: Sequence[str]) -> None:
        self.by_label = {label: i for i, label in enumerate(classes)}
        numbers: dict[float, int] = {}
        clashing: set[float] = set()
        for i, label in enumerate(classes):
            try:
                value = float(label)
            except ValueError:
                continue
            if value in numbers:
                clashing.add(value)  # "1" and "1.0": a number cannot say which
            numbers[value] = i
        self.by_number = {v: i for v, i in numbers.items() if v not in clashing and math.isfinite(v)}
        self.classes = classes

    def index(self, actual: Any) -> int:
        kind = type(actual)
        found: int | None
        if kind is str:
            found = self.by_label.get(actual)
        elif kind is bool:
            found = self.by_label.get("True" if actual else "False")
        elif kind is int or kind is float:
            found = self.by_number.get(float(actual))
        else:
            raise _RefusedError("bad_actual", "'actual' must be a class: a string, a number or a boolean")
        if found is None:
            shown = ", ".join(repr(c) for c in self.classes[:10]) + (", …" if len(self.classes) > 10 else "")
            message = f"{_show(actual)} is not a class of the version that predicted ({shown})"
            raise _RefusedError("unknown_class", message)
        return found


def _show(value: Any) -> str:
    text = orjson.dumps(value).decode()
    return text if len(text) <= 60 else text[:57] + "…"


def _where(item: int, row: int | None) -> dict[str, int]:
    return {"item": item} if row is None else {"item": item, "row": row}


class Feedback:
    """One worker's feedback state; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        model: str,
        version: str,
        classes: Sequence[str] | None,
        recorder: metrics.Recorder,
        directory: Path | None = None,
        slot: int = 0,
        groups: tokens.Groups = (),
    ) -> None:
        self.settings = settings
        self.model = model
        self.version = version
        self.classes = tuple(classes) if classes is not None else None
        self.recorder = recorder
        self.ttl = settings.ttl
        self.watcher = keys.Watcher(settings.keys_dir)
        ring = self.watcher.ring
        #: Kept for the process's life (rotation re-keys it), so the app may bind its methods.
        #: ``groups``: each sensitive input's recorded groups, whose index each id carries per row.
        self.signer = tokens.Signer(
            ring.current % 256, self._subkey(ring.keys[ring.current]), version, self.classes, groups
        )
        self.verifier = self._verifier(ring)
        self.table = dedup.Table(settings.dedup_entries, settings.ttl, directory)
        self.store = labels.Store(model, directory, slot)
        # The own version's series exist from the start, at zero.
        self.store.block(version, self.classes, tokens.with_other(groups))
        self._lookups: dict[tuple[str, ...], _Classes] = {}

    def _subkey(self, key: bytes) -> bytes:
        return tokens.subkey(key, self.settings.scope, self.model)

    def _verifier(self, ring: keys.KeyRing) -> tokens.Verifier:
        return tokens.Verifier({g % 256: tokens.Mac(self._subkey(key)) for g, key in ring.keys.items()})

    def poll(self) -> None:
        """Pick up rotated keys (the server calls this once a second)."""
        ring = self.watcher.poll()
        if ring is not None:
            self.verifier = self._verifier(ring)
            self.signer.rekey(ring.current % 256, self._subkey(ring.keys[ring.current]))

    def families(self) -> list[Metric]:
        return labels.families(self.model, self.store.snapshot())

    # -- the route ---------------------------------------------------------------------------------

    def handle(self, method: bytes, body: bytes, now: int | None = None) -> Response:
        """Answer one request to the feedback route."""
        if method != b"POST":
            message = f"method {method.decode()} not allowed on /v2/models/{self.model}/feedback; use POST"
            return 405, JSON + b"allow: POST\r\n", orjson.dumps({"error": message})
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return 400, JSON, orjson.dumps({"error": f"malformed JSON: {exc}"})
        if type(doc) is dict:
            items: list[Any] = [doc]
        elif type(doc) is list and doc:
            items = doc
        else:
            message = 'the body must be a label {"id": …, "actual": …} or a non-empty array of them'
            return 400, JSON, orjson.dumps({"error": message})
        now = int(time.time()) if now is None else now
        outcome = _Outcome()
        checked: dict[str, _Checked | _RefusedError] = {}
        forgotten = self.table.forgotten
        with self.table.locked():
            for i, item in enumerate(items):
                try:
                    self._item(i, item, checked, now, outcome)
                except _RefusedError as refusal:
                    self._refuse(outcome, refusal, i, None)
        for result, count in outcome.results.items():
            self.recorder.feedback(result, count)
        if self.table.forgotten != forgotten:
            self.recorder.forgotten(self.table.forgotten - forgotten)
        answer: dict[str, Any] = {
            "counted": outcome.counted, "duplicates": outcome.duplicates, "refused": outcome.refused,
        }  # fmt: skip
        if not outcome.refused:
            status = 200
        elif outcome.counted or outcome.duplicates:
            status = 207
        else:
            status = outcome.refused[0]["status"]
            answer["error"] = outcome.refused[0]["error"]
        return status, JSON, orjson.dumps(answer)

    def _refuse(self, outcome: _Outcome, refusal: _RefusedError, item: int, row: int | None) -> None:
        place = f"item {item}" + (f", row {row}" if row is not None else "")
        outcome.refused.append(
            {**_where(item, row), "status": _STATUS[refusal.result], "result": refusal.result,
             "error": f"{place}: {refusal.message}"}
        )  # fmt: skip
        outcome.note(refusal.result)

    def _item(
        self, i: int, item: Any, checked: dict[str, _Checked | _RefusedError], now: int, outcome: _Outcome
    ) -> None:
        if type(item) is not dict:
            raise _RefusedError("malformed", "not an object with 'id' and 'actual'")
        token = item.get("id")
        if type(token) is not str:
            raise _RefusedError("malformed", "'id' must be the string a prediction came with")
        if "actual" not in item:
            raise _RefusedError("malformed", "no 'actual': the true class or value")
        found = checked.get(token)
        if found is None:
            try:
                found = self._check(token, now)
            except _RefusedError as refusal:
                found = refusal
            checked[token] = found
        if isinstance(found, _RefusedError):
            raise found
        actual, row = item["actual"], item.get("row")
        rows = found.claim.rows
        if type(actual) is list:
            if row is not None:
                raise _RefusedError("malformed", "give either 'row' or a list 'actual' (one label per row), not both")
            if len(actual) != rows:
                raise _RefusedError("malformed", f"'actual' has {len(actual)} labels but the id covers {rows} rows")
            for r, value in enumerate(actual):
                if value is not None:
                    self._label(i, r, True, found, value, now, outcome)
            return
        if row is None:
            if rows != 1:
                raise _RefusedError("malformed", f"the id covers {rows} rows: give 'row', or 'actual' as a list")
            row = 0
        elif type(row) is not int or not 0 <= row < rows:
            raise _RefusedError("malformed", f"'row' must be an integer from 0 to {rows - 1}, the rows the id covers")
        self._label(i, row, False, found, item["actual"], now, outcome)

    def _check(self, token: str, now: int) -> _Checked:
        try:
            claim = tokens.read(token)
        except tokens.TokenError as exc:
            raise _RefusedError("malformed", str(exc)) from None
        age = now - claim.issued
        if not self.verifier.holds(claim.key_id):
            if age > self.ttl:  # unverified, but worth saying: it would be refused as expired anyway
                raise _RefusedError("expired", f"issued {age} s ago, and ids are accepted for {self.ttl} s")
            raise _RefusedError(
                "forged", "signed with a key this server does not hold (not this deployment's, or rotated out)"
            )
        if not self.verifier.check(claim):
            raise _RefusedError(
                "forged", "its signature does not match: not issued by this deployment and model, or altered"
            )
        if age > self.ttl:
            raise _RefusedError("expired", f"issued {age} s ago, and ids are accepted for {self.ttl} s")
        return _Checked(claim, claim.predicted)

    def _lookup(self, classes: tuple[str, ...]) -> _Classes:
        found = self._lookups.get(classes)
        if found is None:
            if len(self._lookups) >= _LOOKUPS_KEPT:
                self._lookups.clear()
            found = self._lookups[classes] = _Classes(classes)
        return found

    def _label(self, i: int, row: int, listed: bool, found: _Checked, actual: Any, now: int, outcome: _Outcome) -> None:
        claim = found.claim
        try:
            if claim.classes is not None:
                index = self._lookup(claim.classes).index(actual)
            elif type(actual) not in (int, float) or not math.isfinite(actual):
                message = f"{_show(actual)} is not a finite number, and the model is a regressor"
                raise _RefusedError("bad_actual", message)
            elif not math.isfinite(found.predicted[row]):
                raise _RefusedError("bad_actual", "the prediction was not a finite number: there is no error to count")
            try:
                block = self.store.block(claim.version, claim.classes, claim.groups)
            except labels.VersionLimitError as exc:
                raise _RefusedError("version_limit", str(exc)) from None
        except _RefusedError as refusal:
            self._refuse(outcome, refusal, i, row if listed else None)
            return
        if self.table.seen(dedup.digest(claim.tag, row), claim.issued, now):
            outcome.duplicates.append(_where(i, row if listed else None))
            outcome.note("duplicate")
            return
        if claim.classes is not None:
            self.store.add_class(block, int(found.predicted[row]), index, [rows[row] for rows in claim.group_rows])
        else:
            self.store.add_value(block, float(found.predicted[row]), float(actual), [r[row] for r in claim.group_rows])
        outcome.counted += 1
        outcome.note("counted")
