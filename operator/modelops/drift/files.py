"""Files for ``modelops drift``: samples from CSV/Parquet, referenceStats and counts from JSON/YAML.

Everything that can go wrong with a file becomes an ``InputError`` with one line naming
the file and the problem; the CLI prints it and exits 2. pyarrow and PyYAML are imported
here only, so the statistics never depend on them; pandas is not imported at all.

A table is read lazily, one column at a time (:class:`Table`): a Parquet file is opened
for its schema only and each column is decoded when the comparison asks for it, then
dropped, so the whole file is never in memory at once. A CSV file is parsed once with
``pyarrow.csv`` (a text file cannot be read by column) and each column is converted to
numpy when asked for. Types follow pandas' ``read_csv``/``read_parquet``: integer and float
columns are numeric, everything else categorical; the same strings count as missing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

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


# pandas' default missing-value strings (``read_csv``), so that CSV files read as they always did.
_CSV_NULLS = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
    "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]  # fmt: skip


def _numpy_dtype(arrow_type: Any) -> np.dtype[Any]:
    """The dtype pandas would give the column, as far as its kind goes (numeric or not)."""
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type):
        dtype: np.dtype[Any] = np.dtype(arrow_type.to_pandas_dtype())
        return dtype
    if pa.types.is_boolean(arrow_type):
        return np.dtype(bool)
    return np.dtype(object)


class Column:
    """One column of a table file, decoded to numpy only when asked for and never kept.

    It has the surface ``modelops.drift.data`` reads (``dtype``, ``to_numpy``), like a
    pandas Series.
    """

    __slots__ = ("_fail", "_read", "dtype")

    def __init__(self, read: Callable[[], Any], dtype: np.dtype[Any], fail: Callable[[BaseException], InputError]):
        self._read = read
        self._fail = fail
        self.dtype = dtype

    def to_numpy(self, dtype: Any = None, na_value: Any = None) -> np.ndarray[Any, Any]:
        import pyarrow as pa

        try:
            chunked = self._read()
            if pa.types.is_dictionary(chunked.type):
                chunked = chunked.cast(chunked.type.value_type)
            if dtype is not None and np.dtype(dtype).kind == "f" and self.dtype.kind in "iuf":
                # Nulls become NaN here (the caller's na_value for floats is NaN).
                values = chunked.to_numpy()
                del chunked
                return np.asarray(values, dtype=dtype)
            values = chunked.to_numpy()
        except InputError:
            raise
        except Exception as error:  # a column that cannot be decoded is the file's problem
            raise self._fail(error) from None
        return np.asarray(values, dtype=dtype)


class Table(Mapping[str, Column]):
    """A CSV or Parquet file as name -> :class:`Column`, in the file's column order."""

    def __init__(self, columns: dict[str, Column], rows: int) -> None:
        self._columns = columns
        self.rows = rows

    def __getitem__(self, name: str) -> Column:
        return self._columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def _parquet(file: Path, fail: Callable[[BaseException], InputError]) -> Table:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(file)
    schema = parquet.schema_arrow
    names = [name for name in schema.names if not name.startswith("__index_level_")]
    # pandas writes its index as a column; read_parquet turns it back into the index.
    index_columns = _pandas_index_columns(schema)
    names = [name for name in names if name not in index_columns]

    def reader(name: str) -> Callable[[], Any]:
        return lambda: parquet.read(columns=[name], use_threads=False, use_pandas_metadata=False).column(0)

    columns = {name: Column(reader(name), _numpy_dtype(schema.field(name).type), fail) for name in names}
    return Table(columns, parquet.metadata.num_rows)


def _pandas_index_columns(schema: Any) -> set[str]:
    metadata = schema.metadata or {}
    raw = metadata.get(b"pandas")
    if raw is None:
        return set()
    try:
        index = json.loads(raw).get("index_columns", [])
    except ValueError:
        return set()
    return {name for name in index if isinstance(name, str)}


def _csv(file: Path, suffix: str, fail: Callable[[BaseException], InputError]) -> Table:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        file,
        parse_options=pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","),
        convert_options=pacsv.ConvertOptions(null_values=_CSV_NULLS, strings_can_be_null=True),
    )
    names = [str(name) for name in table.column_names]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"duplicate column names {', '.join(repr(n) for n in duplicates)}")

    def reader(index: int) -> Callable[[], Any]:
        return lambda: table.column(index)

    types = table.schema.types
    columns = {name: Column(reader(index), _numpy_dtype(types[index]), fail) for index, name in enumerate(names)}
    return Table(columns, table.num_rows)


def load_table(path: str, what: str) -> Table:
    """A CSV (``.csv``, ``.csv.gz``, ``.tsv``) or Parquet (``.parquet``, ``.pq``) file, read lazily by column."""
    file = _existing(path, what)
    suffix = _suffix(file)
    if suffix not in TABLE_SUFFIXES:
        raise InputError(
            f"{what} file {path}: unsupported type {suffix or '(none)'!r}; expected CSV, Parquet, "
            "or for the reference JSON/YAML referenceStats"
        )

    def fail(error: BaseException) -> InputError:
        return InputError(f"cannot read {what} file {path}: {_one_line(error)}")

    try:
        table = _parquet(file, fail) if suffix in {".parquet", ".pq"} else _csv(file, suffix, fail)
    except Exception as error:  # any reader failure is the file's problem
        raise fail(error) from None
    if len(table) == 0:
        raise InputError(f"{what} file {path} has no columns")
    if table.rows == 0:
        raise InputError(f"{what} file {path} has no rows (only a header)")
    return table


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
