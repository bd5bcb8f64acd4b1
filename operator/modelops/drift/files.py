"""Files for ``modelops drift``: samples from CSV/Parquet, referenceStats and counts from JSON/YAML.

Everything that can go wrong with a file becomes an ``InputError`` with one line naming
the file and the problem; the CLI prints it and exits 2. pandas and PyYAML are imported
here only, so the statistics never depend on them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".parquet", ".pq")
DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")


class InputError(ValueError):
    """A file the user named cannot be used; the message is one line."""


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in TABLE_SUFFIXES + DOCUMENT_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def is_document(path: str) -> bool:
    """Whether ``path`` names a JSON/YAML document (referenceStats or counts) by its suffix."""
    return _suffix(Path(path)) in DOCUMENT_SUFFIXES


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__


def _existing(path: str, what: str) -> Path:
    file = Path(path)
    if not file.exists():
        raise InputError(f"{what} file not found: {path}")
    if not file.is_file():
        raise InputError(f"{what} path is not a file: {path}")
    return file


def load_table(path: str, what: str) -> Any:
    """A CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file as a DataFrame."""
    file = _existing(path, what)
    suffix = _suffix(file)
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"{what} file {path}: unsupported type {suffix or '(none)'!r}; expected CSV, Parquet, "
            "or for the reference JSON/YAML referenceStats"
        )
    import pandas as pd

    try:
        if suffix in {".parquet", ".pq"}:
            frame = pd.read_parquet(file)
        else:
            frame = pd.read_csv(file, sep="\t" if suffix == ".tsv" else ",")
    except Exception as error:  # any reader failure is the file's problem
        raise InputError(f"cannot read {what} file {path}: {_one_line(error)}") from None
    if len(frame.columns) == 0:
        raise InputError(f"{what} file {path} has no columns")
    return frame


def load_document(path: str, what: str) -> Mapping[str, Any]:
    """A JSON or YAML file holding one object (mapping)."""
    file = _existing(path, what)
    try:
        text = file.read_text(encoding="utf-8")
        if _suffix(file) == ".json":
            document = json.loads(text)
        else:
            import yaml

            document = yaml.safe_load(text)
    except Exception as error:  # any parse failure is the file's problem
        raise InputError(f"cannot read {what} file {path}: {_one_line(error)}") from None
    if not isinstance(document, Mapping):
        raise InputError(f"{what} file {path} must hold an object, not {type(document).__name__}")
    return document


def current_counts(document: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """Current per-bin counts: ``{"features": {name: counts}}`` or ``{name: counts}``.

    Counts are a list (one per bin, or per reference category) or, for a categorical
    feature, an object category -> count.
    """
    counts = document.get("features", document)
    if not isinstance(counts, Mapping):
        raise InputError(f"current file {path}: 'features' must map feature names to counts")
    for name, value in counts.items():
        if not isinstance(value, list | Mapping):
            raise InputError(f"current file {path}: the counts of feature {name!r} must be a list or an object")
    return counts
