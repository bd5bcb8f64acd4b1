"""Terminal output: aligned tables with optional colour, and JSON/YAML for machines.

Colour only when the stream is a terminal and ``NO_COLOR`` is unset (https://no-color.org);
widths are measured on the plain text, so coloured columns stay aligned.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import yaml

GREEN, YELLOW, RED, BOLD, RESET = "\033[32m", "\033[33m", "\033[31m", "\033[1m", "\033[0m"

GOOD = {"Succeeded", "Healthy", "True", "Production", "pass", "no"}
BUSY = {"Running", "Pending", "Progressing", "Paused", "Staging", "Unknown"}
BAD = {"Failed", "Degraded", "RolledBack", "False", "FAIL", "yes", "drifted"}


def use_colour(stream: TextIO) -> bool:
    return "NO_COLOR" not in os.environ and bool(getattr(stream, "isatty", lambda: False)())


def paint(text: str, colour: bool) -> str:
    if not colour:
        return text
    if text in GOOD:
        return f"{GREEN}{text}{RESET}"
    if text in BUSY:
        return f"{YELLOW}{text}{RESET}"
    if text in BAD:
        return f"{RED}{text}{RESET}"
    return text


def cell(value: Any) -> str:
    """A value as a table cell: '-' when absent, floats short, lists comma-joined, dicts k=v."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, colour: bool = False) -> str:
    """Columns padded to their widest cell, two spaces apart, like kubectl get."""
    texts = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in texts]) for i, h in enumerate(headers)]
    lines = []
    head = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()
    lines.append(f"{BOLD}{head}{RESET}" if colour else head)
    for row in texts:
        padded = [paint(c, colour) + " " * (w - len(c)) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def heading(text: str, colour: bool) -> str:
    return f"{BOLD}{text}{RESET}" if colour else text


def dump(data: Any, output: str) -> str:
    """JSON (indented, keys as given) or YAML (block style) of a view."""
    if output == "json":
        return json.dumps(data, indent=2, sort_keys=False, default=str)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True).rstrip("\n")
