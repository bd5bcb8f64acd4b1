"""The chart's Grafana dashboards as tests read them: the files, their panels, queries and variables.

``DASHBOARDS`` is ``charts/modelops-operator/dashboards``; ``load()`` reads every dashboard there by
name; ``queries(dashboard)`` lists each panel's PromQL (title, refId, expr); ``variables`` the
template variables; ``substitute(expr, values)`` puts values in for ``$name`` as Grafana does
(``$__rate_interval`` and ``$__range`` included), so a query can run against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[1] / "charts" / "modelops-operator" / "dashboards"

# Grafana's own variables the queries may use, with what the tests substitute: ranges long enough for
# rate() to hold two scrapes of a 1 s scrape interval on a busy machine.
BUILTINS: Mapping[str, str] = {"__rate_interval": "1m", "__range": "1h"}

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def load() -> dict[str, dict[str, Any]]:
    """Every dashboard of the chart by file stem (serving, canary, ...)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The dashboard's panels that show data (rows left out, collapsed rows' panels included)."""
    found: list[dict[str, Any]] = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            found += panel.get("panels", [])
        else:
            found.append(panel)
    return found


def queries(dashboard: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query of every panel."""
    return [
        (panel["title"], target.get("refId", ""), target.get("expr", ""))
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def variables(dashboard: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The template variables by name."""
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def variable_query(variable: Mapping[str, Any]) -> str:
    """A query variable's query (Grafana stores it as a string or as {query: ...})."""
    query = variable.get("query")
    return str(query["query"] if isinstance(query, dict) else query)


def used_variables(text: str) -> set[str]:
    """The names of the variables a query refers to."""
    return {a or b for a, b in _VARIABLE.findall(text)}


def substitute(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``$name`` / ``${name}`` replaced; an unknown name raises KeyError."""
    merged = {**BUILTINS, **values}
    return _VARIABLE.sub(lambda m: merged[m.group(1) or m.group(2)], text)


LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$")


def label_values_query(text: str) -> tuple[str | None, str]:
    """(series selector or None, label) of a ``label_values(selector, label)`` variable query."""
    match = LABEL_VALUES.match(text.strip())
    if match is None:
        raise ValueError(f"not a label_values() query: {text!r}")
    return match.group("selector"), match.group("label")
