"""The rollout state of a ModelDeployment: typed and frozen, parsed from status and written back.

All of a rollout lives in the object's status (so an operator restarted at any moment continues
at the same step). ``RolloutState.from_status`` reads it and ``to_status`` writes it, as Kopf
keeps its handler state (``HandlerState.from_storage`` / ``as_patch``): one class names every
field, with how it is read (its status key is its name in camelCase), so no list of keys is kept
by hand anywhere else.

Rules:
- ``from_status`` never raises: a field of the wrong type or shape (a person's edit, a status
  written by another version) parses to its safe default (no value, weight 0, step from the
  start) and is named in ``problems``, which the reconcile reports; the state written back is
  then clean;
- ``to_status`` writes every field, ``None`` for the absent ones, so a merge patch removes what
  the state no longer holds; empty lists are written as ``None`` too;
- ``from_status(s.to_status()) == s`` for every state (``problems`` is not part of equality).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final, Literal, TypeVar, get_args

from modelops.logic.conditions import parse_time

MAX_WEIGHT: Final = 100

_Entry = TypeVar("_Entry")
ResultPhase = Literal["Successful", "Failed", "Inconclusive", "Running"]
_PHASES: Final[dict[str, ResultPhase]] = {phase: phase for phase in get_args(ResultPhase)}


@dataclass(frozen=True)
class VersionBinding:
    """The exact ModelVersion object a role serves: its name, uid and artifact digest."""

    name: str
    uid: str
    sha256: str

    @classmethod
    def parse(cls, value: Any) -> VersionBinding | None:
        """A binding from its status form; None unless it is a mapping with a uid."""
        if isinstance(value, VersionBinding):
            return value
        if not isinstance(value, Mapping) or not value.get("uid"):
            return None
        return cls(name=str(value.get("name")), uid=str(value.get("uid")), sha256=str(value.get("sha256")))

    def to_status(self) -> dict[str, str]:
        return {"name": self.name, "uid": self.uid, "sha256": self.sha256}


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``status.history``: what happened to a version, when and why."""

    version: str
    result: str
    at: str
    message: str | None = None
    from_version: str | None = None

    def to_status(self) -> dict[str, str]:
        entry = {"version": self.version, "result": self.result, "at": self.at}
        if self.message is not None:
            entry["message"] = self.message
        if self.from_version is not None:
            entry["fromVersion"] = self.from_version
        return entry


@dataclass(frozen=True)
class AnalysisResult:
    """One entry of ``status.analysis``: the latest measurement of one check in the current step.

    ``failures`` and ``inconclusive`` are the counts so far in the step (the CRD defaults them to
    0, so they are always written); ``message`` and ``value`` are written only when present.
    """

    name: str
    phase: ResultPhase
    at: str
    message: str | None = None
    value: float | None = None
    failures: int = 0
    inconclusive: int = 0

    @classmethod
    def parse(cls, value: Any) -> AnalysisResult | None:
        """An entry from its status form; None unless it has a name, a phase of the CRD's, an RFC 3339
        ``at``, a string message, a finite number value and counts that are whole numbers from 0."""
        if not isinstance(value, Mapping):
            return None
        name, phase, at = value.get("name"), _PHASES.get(str(value.get("phase"))), value.get("at")
        message, number = value.get("message"), value.get("value")
        failures, inconclusive = value.get("failures", 0), value.get("inconclusive", 0)
        if not (isinstance(name, str) and name and phase and isinstance(at, str) and parse_time(at) is not None):
            return None
        if not isinstance(message, str | None) or not (number is None or _finite(number)):
            return None
        if not (_count(failures) and _count(inconclusive)):
            return None
        return cls(name, phase, at, message=message, value=number, failures=failures, inconclusive=inconclusive)

    def to_status(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "phase": self.phase}
        if self.message is not None:
            entry["message"] = self.message
        entry.update(at=self.at, failures=self.failures, inconclusive=self.inconclusive)
        if self.value is not None:
            entry["value"] = self.value
        return entry


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class _Reader:
    """Reads status fields, noting each one that is not of its type (it parses to the default)."""

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.status = status
        self.problems: list[str] = []

    def bad(self, key: str, why: str) -> None:
        self.problems.append(f"status.{key}: {why}")

    def text(self, key: str) -> str | None:
        value = self.status.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, str):
            return value
        self.bad(key, f"{_shown(value)} is not a string; ignored")
        return None

    def time(self, key: str) -> str | None:
        value = self.text(key)
        if value is not None and parse_time(value) is None:
            self.bad(key, f"{value!r} is not an RFC 3339 time; ignored")
            return None
        return value

    def weight(self, key: str) -> int:
        return self.integer(key, 0, MAX_WEIGHT) or 0

    def step(self, key: str) -> int | None:
        return self.integer(key, 0, None)

    def results(self, key: str) -> tuple[AnalysisResult, ...]:
        return self.parsed(key, AnalysisResult.parse, "check results (name, phase, at; counts from 0)")

    def integer(self, key: str, low: int, high: int | None) -> int | None:
        value = self.status.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            self.bad(key, f"{_shown(value)} is not a whole number; ignored")
            return None
        number = int(value)
        if number < low or (high is not None and number > high):
            self.bad(key, f"{number} is out of range; ignored")
            return None
        return number

    def items(self, key: str) -> list[Any]:
        value = self.status.get(key)
        if value is None:
            return []
        if isinstance(value, list | tuple):
            return list(value)
        self.bad(key, f"{_shown(value)} is not a list; ignored")
        return []

    def names(self, key: str) -> tuple[str, ...]:
        entries = self.items(key)
        kept = tuple(v for v in entries if isinstance(v, str) and v)
        if len(kept) != len(entries):
            self.bad(key, "entries that are not version names dropped")
        return kept

    def mappings(self, key: str) -> list[Mapping[str, Any]]:
        entries = self.items(key)
        kept = [e for e in entries if isinstance(e, Mapping)]
        if len(kept) != len(entries):
            self.bad(key, "entries that are not objects dropped")
        return kept

    def binding(self, key: str) -> VersionBinding | None:
        value = self.status.get(key)
        found = VersionBinding.parse(value)
        if found is None and value is not None:
            self.bad(key, f"{_shown(value)} is not a binding (name, uid, sha256); ignored")
        return found

    def bindings(self, key: str) -> tuple[VersionBinding, ...]:
        return self.parsed(key, VersionBinding.parse, "bindings")

    def parsed(self, key: str, parse: Callable[[Any], _Entry | None], what: str) -> tuple[_Entry, ...]:
        """The entries of a list that ``parse`` accepts; the others are dropped and named."""
        entries = self.mappings(key)
        kept = tuple(e for e in (parse(entry) for entry in entries) if e is not None)
        if len(kept) != len(entries):
            self.bad(key, f"entries that are not {what} dropped")
        return kept

    def history(self, key: str) -> tuple[HistoryEntry, ...]:
        kept = []
        for entry in self.mappings(key):
            version, result, at = entry.get("version"), entry.get("result"), entry.get("at")
            message, source = entry.get("message"), entry.get("fromVersion")
            if not (isinstance(version, str) and isinstance(result, str) and isinstance(at, str)) or not all(
                isinstance(v, str | None) for v in (message, source)
            ):
                self.bad(key, "an entry without version, result and at (strings) dropped")
                continue
            kept.append(HistoryEntry(version, result, at, message=message, from_version=source))
        return tuple(kept)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _kept(kind: str, default: Any = None) -> Any:
    """A state field, read from status with ``_Reader.<kind>`` under its camelCase name."""
    return field(default=default, metadata={"kind": kind})


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _written(value: Any) -> Any:
    """A field's value in its status form."""
    if isinstance(value, tuple):
        return [_written(v) for v in value] or None
    if isinstance(value, VersionBinding | HistoryEntry | AnalysisResult):
        return value.to_status()
    return value


@dataclass(frozen=True)
class RolloutState:
    """Every field of the rollout kept in status (camelCase there, snake_case here)."""

    phase: str | None = _kept("text")
    message: str | None = _kept("text")
    desired_version: str | None = _kept("text")
    serving_version: str | None = _kept("text")
    stable_version: str | None = _kept("text")
    canary_version: str | None = _kept("text")
    canary_weight: int = _kept("weight", 0)
    step: int | None = _kept("step")
    step_started_at: str | None = _kept("time")
    analysis: tuple[AnalysisResult, ...] = _kept("results", ())
    previous_stable_versions: tuple[str, ...] = _kept("names", ())
    failed_version: str | None = _kept("text")
    last_measured_at: str | None = _kept("time")
    last_action: str | None = _kept("text")
    history: tuple[HistoryEntry, ...] = _kept("history", ())
    # (_kept returns a dataclasses.field; ruff cannot tell, nor that a VersionBinding is immutable)
    stable_binding: VersionBinding | None = _kept("binding")  # noqa: RUF009
    canary_binding: VersionBinding | None = _kept("binding")  # noqa: RUF009
    failed_binding: VersionBinding | None = _kept("binding")  # noqa: RUF009
    previous_stable_bindings: tuple[VersionBinding, ...] = _kept("bindings", ())
    # What was wrong with the status this state was parsed from (not part of the state).
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_status(cls, status: Mapping[str, Any] | None) -> RolloutState:
        """The state in a status; never raises (see the module docstring)."""
        read = _Reader(status if isinstance(status, Mapping) else {})
        values = {f.name: getattr(read, f.metadata["kind"])(_camel(f.name)) for f in fields(cls) if f.metadata}
        return cls(**values, problems=tuple(read.problems))

    def to_status(self) -> dict[str, Any]:
        """The state as status fields (camelCase), every field present, ``None`` where empty."""
        return {_camel(f.name): _written(getattr(self, f.name)) for f in fields(self) if f.metadata}
