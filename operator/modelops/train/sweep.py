"""Hyper-parameter sweeps: trial expansion and best-trial selection (pure, no scikit-learn).

The operator and the trainer both call :func:`expand_sweep` on the same ``spec.sweep``; the
operator to size the Indexed Job, the trainer to pick trial ``i``'s parameters. It must
therefore be deterministic across processes, machines and Python versions:

- Parameter names are taken in **sorted** order (JSON objects that pass through the
  Kubernetes API server do not keep their key order).
- ``grid``: the cartesian product of the value lists, the last name (in sorted order)
  varying fastest, each list in its given order. ``trials`` is ignored.
- ``random``: ``trials`` draws (default 10) from ``random.Random(seed)`` (default seed 0),
  using only ``Random.random()``, the one generator call Python guarantees to reproduce
  across versions. Per trial, names in sorted order: a list is a uniform choice; a
  ``{"low", "high", "log", "type"}`` mapping is a uniform (or log-uniform) float, or an int
  in ``[low, high]`` inclusive when ``type`` is ``"int"``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from typing import Any, Literal

Goal = Literal["maximize", "minimize"]

STRATEGIES = ("grid", "random")
DEFAULT_RANDOM_TRIALS = 10
#: A hard cap so a typo cannot ask for a million pods.
MAX_TRIALS = 1000
#: The metric a sweep optimises when it names none, per task.
DEFAULT_METRIC: dict[str, tuple[str, Goal]] = {
    "classification": ("f1", "maximize"),
    "regression": ("rmse", "minimize"),
}


class SweepError(ValueError):
    """An invalid sweep; the message starts with the field path (``sweep.parameters.x``)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _distribution(name: str, spec: Mapping[str, Any]) -> tuple[float, float, bool, bool]:
    path = f"sweep.parameters.{name}"
    unknown = sorted(set(spec) - {"low", "high", "log", "type"})
    if unknown:
        raise SweepError(f"{path}: unknown key {unknown[0]!r}; a range has low, high, log, type")
    raw_low, raw_high = spec.get("low"), spec.get("high")
    if not (isinstance(raw_low, int | float) and isinstance(raw_high, int | float)) or not (
        _is_number(raw_low) and _is_number(raw_high)
    ):
        raise SweepError(f"{path}: a range needs numeric 'low' and 'high'")
    low, high = float(raw_low), float(raw_high)
    kind = spec.get("type", "float")
    if kind not in ("float", "int"):
        raise SweepError(f"{path}.type: must be 'float' or 'int', got {kind!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SweepError(f"{path}.log: must be true or false")
    if low > high:
        raise SweepError(f"{path}: low ({raw_low}) is greater than high ({raw_high})")
    if log and low <= 0:
        raise SweepError(f"{path}: a log range needs low > 0, got {raw_low}")
    if kind == "int" and (low != int(low) or high != int(high)):
        raise SweepError(f"{path}: an int range needs integer low and high")
    return low, high, log, kind == "int"


def _draw(rng: random.Random, name: str, spec: Any) -> Any:
    if isinstance(spec, list):
        return spec[min(int(rng.random() * len(spec)), len(spec) - 1)]
    low, high, log, integer = _distribution(name, spec)
    u = rng.random()
    if integer:
        lo, hi = (math.log(low), math.log(high + 1)) if log else (low, high + 1)
        value = math.exp(lo + u * (hi - lo)) if log else lo + u * (hi - lo)
        return int(min(max(math.floor(value), low), high))
    if log:
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return low + u * (high - low)


def expand_sweep(sweep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The parameter overrides of every trial, in trial-index order (see the module doc).

    Raises :class:`SweepError` for an invalid sweep.
    """
    if not isinstance(sweep, Mapping):
        raise SweepError("sweep: must be an object")
    strategy = sweep.get("strategy", "grid")
    if strategy not in STRATEGIES:
        raise SweepError(f"sweep.strategy: must be one of {', '.join(STRATEGIES)}, got {strategy!r}")
    parameters = sweep.get("parameters")
    if not isinstance(parameters, Mapping) or not parameters:
        raise SweepError("sweep.parameters: must be a non-empty object of parameter -> values")
    names = sorted(parameters)
    for name in names:
        spec = parameters[name]
        if isinstance(spec, list):
            if not spec:
                raise SweepError(f"sweep.parameters.{name}: must be a non-empty list")
        elif strategy == "random" and isinstance(spec, Mapping):
            _distribution(name, spec)
        else:
            wanted = "a non-empty list" + (" or a {low, high} range" if strategy == "random" else "")
            raise SweepError(f"sweep.parameters.{name}: must be {wanted}")

    if strategy == "grid":
        total = math.prod(len(parameters[name]) for name in names)
        if total > MAX_TRIALS:
            raise SweepError(f"sweep.parameters: the grid has {total} trials, more than {MAX_TRIALS}")
        return [
            dict(zip(names, values, strict=True)) for values in itertools.product(*(parameters[name] for name in names))
        ]

    trials = sweep.get("trials", DEFAULT_RANDOM_TRIALS)
    if not isinstance(trials, int) or isinstance(trials, bool) or not 1 <= trials <= MAX_TRIALS:
        raise SweepError(f"sweep.trials: must be an integer in [1, {MAX_TRIALS}], got {trials!r}")
    seed = sweep.get("seed", 0)
    if seed is None:
        seed = 0
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise SweepError(f"sweep.seed: must be an integer, got {seed!r}")
    rng = random.Random(seed)
    return [{name: _draw(rng, name, parameters[name]) for name in names} for _ in range(trials)]


def best_trial(
    trials: Sequence[Mapping[str, Any] | None],
    metric: str,
    goal: Goal | str = "maximize",
) -> int | None:
    """The index of the best trial by ``metric``, or ``None`` when no trial has it.

    Each element describes one trial: a mapping with ``metrics`` (a mapping of metric
    name -> number) and optionally ``index`` or ``trial.index`` (default: its position in
    ``trials``); a ``result.json`` or a success termination message both fit. ``None`` elements (trials
    not finished or failed), trials without the metric and non-finite values are skipped.
    Ties go to the lowest index.
    """
    if goal not in ("maximize", "minimize"):
        raise SweepError(f"sweep.goal: must be 'maximize' or 'minimize', got {goal!r}")
    best: tuple[float, int] | None = None
    for position, trial in enumerate(trials):
        if trial is None:
            continue
        metrics = trial.get("metrics")
        if not isinstance(metrics, Mapping):
            continue
        value = metrics.get(metric)
        if not isinstance(value, int | float) or not _is_number(value):
            continue
        index = trial.get("index")
        if index is None and isinstance(trial.get("trial"), Mapping):
            index = trial["trial"].get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = position
        key = (-float(value) if goal == "maximize" else float(value), index)
        if best is None or key < best:
            best = key
    return None if best is None else best[1]
