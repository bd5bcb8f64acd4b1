"""The one exception type the trainer reports to its user.

A :class:`TrainError` carries a single human-readable line that names the problem; the CLI
prints it as ``modelops train: error: <message>`` and puts it in the termination message.
Anything else that escapes is a bug or an unexpected library failure, reported the same way
but prefixed with its type.
"""

from __future__ import annotations


class TrainError(ValueError):
    """Bad input or an unusable dataset: the run cannot succeed by retrying."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(TrainError):
    """The run config is not valid; the message starts with the field path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"config {path}: {problem}" if path else f"config: {problem}")
        self.path = path


def one_line(text: str, limit: int = 1000) -> str:
    """Collapse whitespace (newlines included) and cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def preview(names: list[str] | tuple[str, ...], limit: int = 10) -> str:
    """``a, b, c`` or ``a, b, c, … (12 more)`` for listing valid choices in a message."""
    shown = ", ".join(names[:limit])
    rest = len(names) - limit
    return f"{shown}, … ({rest} more)" if rest > 0 else shown
