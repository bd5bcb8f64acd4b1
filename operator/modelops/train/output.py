"""Atomic result files, the model artifact's bytes, and the termination message.

A run writes ``model.skops`` and ``result.json`` under temporary names in the output
directory and renames them into place only at the end, the model first, so a
``result.json`` exists only beside a complete model. On failure the temporary files are
removed; so are a previous run's model (``model.skops``, or a ``model.joblib`` of an older
trainer) and ``result.json`` at the start of a run, so a failed run never leaves anything that
looks like a result.

:func:`write_model` persists the fitted pipeline with skops (a zip of JSON and ``.npy`` arrays
that loads only trusted types, never a pickle) in a canonical form: skops names objects and
array files after ``id()`` and stamps zip entries with the clock, so the same model would get a
new sha256 on every run; the canonical form numbers them in order of appearance, gives every
entry one fixed date and zeroes the padding bytes of structured arrays, so the same config and
data give the same bytes.

:func:`termination_message` is pure: it builds the contract's message and, when it would
pass :data:`TERMINATION_LIMIT` bytes as JSON, wraps it gzip-compressed and base64-encoded in
``{"ok": …, "encoding": "gzip+base64", "data": …}`` (reference statistics compress well, so
wide datasets keep them); only when even that does not fit does it drop optional fields
(feature importance, reference statistics, fairness, signature, trial params, metrics, URIs …) until it fits, marking
``"truncated": true``. The full record is always in ``result.json``; a truncated run also
prints it, compressed, as the last line of its log (:func:`result_log_line`), where the
operator reads it when it cannot read the artifact store (``docs/contracts.md``).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TERMINATION_LIMIT = 4096
DEFAULT_TERMINATION_LOG = "/dev/termination-log"
MODEL_FILE = "model.skops"
MODEL_FORMAT = "skops"
RESULT_FILE = "result.json"
# What older trainers wrote; removed with the other results so it never outlives a new run.
LEGACY_MODEL_FILE = "model.joblib"
SCHEMA_FILE = "schema.json"
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can carry


def dumps(document: Any) -> str:
    """Compact, key-order-preserving JSON with no NaN/Infinity (they are not JSON)."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _size(document: Any) -> int:
    return len(dumps(document).encode("utf-8"))


def _reducers() -> list[Callable[[dict[str, Any]], None]]:
    def trial_index_only(m: dict[str, Any]) -> None:
        if isinstance(m.get("trial"), dict):
            m["trial"] = {"index": m["trial"].get("index")}

    def drop(*path: str) -> Callable[[dict[str, Any]], None]:
        def reducer(m: dict[str, Any]) -> None:
            node: Any = m
            for key in path[:-1]:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(path[-1], None)

        return reducer

    return [
        drop("sweep"),
        drop("featureImportance"),
        drop("referenceStats"),
        drop("columns"),
        drop("fairness"),
        drop("signature"),
        drop("params"),
        trial_index_only,
        drop("metrics"),
        drop("dataset", "uri"),
        drop("artifact", "uri"),
        drop("model"),
        drop("dataset"),
        drop("resultFile"),
    ]


ENCODING = "gzip+base64"


def compressed(message: dict[str, Any]) -> str:
    """``message`` wrapped as ``{"ok", "encoding": "gzip+base64", "data"}`` (mtime 0: reproducible)."""
    packed = gzip.compress(dumps(message).encode("utf-8"), compresslevel=9, mtime=0)
    return dumps({"ok": bool(message.get("ok")), "encoding": ENCODING, "data": base64.b64encode(packed).decode()})


def _fits(text: str, limit: int) -> bool:
    return len(text.encode("utf-8")) <= limit


def termination_message(message: dict[str, Any], limit: int = TERMINATION_LIMIT) -> str:
    """``message`` in at most ``limit`` bytes: plain, else compressed, else with optional fields dropped."""
    if _size(message) <= limit:
        return dumps(message)
    packed = compressed(message)
    if _fits(packed, limit):
        return packed
    reduced = json.loads(dumps(message))
    reduced["truncated"] = True
    for reducer in _reducers():
        reducer(reduced)
        if _size(reduced) <= limit:
            return dumps(reduced)
        packed = compressed(reduced)
        if _fits(packed, limit):
            return packed
    if "error" in message:
        return error_message(str(message["error"]), limit)
    return dumps({"ok": bool(message.get("ok")), "truncated": True})


def error_message(error: str, limit: int = TERMINATION_LIMIT) -> str:
    """``{"ok": false, "error": …}`` of at most ``limit`` bytes, the error cut if needed."""
    text = error
    while True:
        encoded = dumps({"ok": False, "error": text})
        if len(encoded.encode("utf-8")) <= limit:
            return encoded
        overflow = len(encoded.encode("utf-8")) - limit
        text = text[: max(0, len(text) - overflow - 1)] + "…"


def write_termination_log(path: str | None, text: str) -> None:
    """Write the termination message; the default path only when it exists (a pod)."""
    target = path if path is not None else DEFAULT_TERMINATION_LOG
    if path is None and not os.path.exists(target):
        return
    with open(target, "w", encoding="utf-8") as handle:
        handle.write(text)


def _canonical_ids(schema: Any) -> dict[str, str]:
    """Renumber ``__id__`` values (in place) in order of appearance; return old → new data file names."""
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("__id__"), int):
                node["__id__"] = ids.setdefault(node["__id__"], len(ids) + 1)
            name = node.get("file")
            if isinstance(name, str) and "__loader__" in node:
                suffix = name.rpartition(".")[2]
                node["file"] = files.setdefault(name, f"{len(files) + 1}.{suffix}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return files


def canonical_skops(data: bytes) -> bytes:
    """The same skops archive with ids, data file names, entry order and dates made reproducible."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read(SCHEMA_FILE))
        files = _canonical_ids(schema)
        missing = sorted(set(files) - set(source.namelist()))
        if missing:
            raise ValueError(f"skops archive names data files it does not hold: {missing[:3]}")
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as target:

            def put(name: str, content: bytes) -> None:
                info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
                info.external_attr = 0o644 << 16
                target.writestr(info, content)

            put(SCHEMA_FILE, json.dumps(schema, indent=1).encode("utf-8"))
            for old, new in files.items():
                content = source.read(old)
                put(new, _zero_padding(content) if new.endswith(".npy") else content)
    return out.getvalue()


def _zero_padding(npy: bytes) -> bytes:
    """An ``.npy`` of a structured array with its padding bytes zeroed (a tree's node array has some).

    The padding between fields is whatever memory the array was built in; zeroed, the same model
    gives the same bytes. Other arrays are returned as they are.
    """
    import numpy as np

    try:
        array = np.load(io.BytesIO(npy), allow_pickle=False)
    except ValueError:  # nothing skops writes, but not ours to judge: keep it as it is
        return npy
    fields = array.dtype.fields
    if not fields or sum(f[0].itemsize for f in fields.values()) == array.dtype.itemsize:
        return npy
    clean = np.zeros(array.shape, dtype=array.dtype)
    for name in fields:
        clean[name] = array[name]
    out = io.BytesIO()
    np.save(out, clean, allow_pickle=False)
    return out.getvalue()


def model_bytes(model: Any) -> bytes:
    """``model`` persisted with skops, canonical (see the module docstring)."""
    import skops.io

    return canonical_skops(skops.io.dumps(model))


def write_model(model: Any, path: Path) -> None:
    """Write ``model`` to ``path`` as a canonical skops archive."""
    path.write_bytes(model_bytes(model))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class AtomicDir:
    """Files staged under temporary names in ``directory``, renamed into place by :meth:`commit`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._staged: list[tuple[Path, Path]] = []

    def stage(self, name: str) -> Path:
        """A temporary path for ``name``; it becomes ``directory/name`` on commit."""
        temp = self.directory / f".{name}.tmp-{os.getpid()}"
        self._staged.append((temp, self.directory / name))
        return temp

    def commit(self) -> None:
        for temp, final in self._staged:
            os.replace(temp, final)
        self._staged.clear()
        _fsync_dir(self.directory)

    def discard(self) -> None:
        for temp, _ in self._staged:
            temp.unlink(missing_ok=True)
        self._staged.clear()


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_results(directory: Path) -> None:
    """Remove a previous run's result from ``directory`` (``result.json`` first), if any."""
    for stale in (RESULT_FILE, MODEL_FILE, LEGACY_MODEL_FILE):
        (directory / stale).unlink(missing_ok=True)


@contextmanager
def atomic_output(directory: Path) -> Iterator[AtomicDir]:
    """Prepare ``directory`` (created; stale results removed) and stage files in it.

    Files staged in the block are renamed into place when :meth:`AtomicDir.commit` is
    called; on an exception they are removed.
    """
    directory.mkdir(parents=True, exist_ok=True)
    remove_results(directory)
    staged = AtomicDir(directory)
    try:
        yield staged
    finally:
        staged.discard()


#: The start of the log line that carries a whole ``result.json`` (gzip, then base64).
RESULT_LOG_PREFIX = "modelops-result gzip+base64 "


def result_log_line(result_file: Path) -> str:
    """``result.json``'s exact bytes as one log line: the prefix, then gzip + base64 (mtime 0)."""
    packed = gzip.compress(result_file.read_bytes(), compresslevel=9, mtime=0)
    return RESULT_LOG_PREFIX + base64.b64encode(packed).decode()


def is_truncated(text: str) -> bool:
    """Whether a termination message (as :func:`termination_message` wrote it) lost fields."""
    document = json.loads(text)
    if document.get("encoding") == ENCODING:
        document = json.loads(gzip.decompress(base64.b64decode(document["data"])))
    return bool(document.get("truncated"))
