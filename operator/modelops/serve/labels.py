"""The counters of labels fed back, per version that predicted: made on a version's first label, summed over workers.

Unlike the other series (:mod:`modelops.serve.metrics`), whose layout is fixed by the served model at
load, labels arrive for whichever version an id names: the pod's own, the canary's, or one rolled
out days ago. So each worker keeps a list of *blocks*, one per version it has counted, each a
contiguous run of cells in a float64 array:

- classification: ``[labels, confusion[0,0], confusion[0,1], …]`` over the version's classes (from
  the id, which carries them);
- regression: ``[labels, absolute error, squared error, overestimate, underestimate]``;
- a classifier's id that names its rows' groups (format 2, :mod:`modelops.serve.tokens`) has a block
  of its own with, after the confusion matrix, per sensitive input and group (``__other__`` last)
  ``[labels, correct[c]…, predicted[c]…, actual[c]…]``: the margins of the group's confusion matrix,
  3·C + 1 cells rather than C², enough for its recall and false positive rate of every class; a
  regressor's, after its five cells, per group ``[labels, absolute error]``.

With several workers, a worker's blocks are described, one JSON line each, in ``labels-<slot>.jsonl``
in the supervisor's metrics directory, and its cells are ``labels-<slot>.f64`` beside it (grown as
blocks are added); a line is written before any cell of its block is counted, so a scrape (by any
worker) that reads both never sees a cell it cannot name. A restarted worker reopens its files and
carries on counting. :func:`families` sums every worker's blocks by (version, labels), so two workers
(or two blocks) of one version add up into one series.
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from prometheus_client.core import CounterMetricFamily, Metric

FloatArray = npt.NDArray[np.float64]
#: Sensitive inputs and each one's groups, ``__other__`` last (as :class:`modelops.serve.tokens.Claim` names them).
Groups = tuple[tuple[str, tuple[str, ...]], ...]

#: Versions one worker counts labels for, its own included; a label of another is refused.
MAX_VERSIONS = 32
REGRESSION_CELLS = ("labels", "absolute_error", "squared_error", "overestimate", "underestimate")
#: A group's cells after its label count, each one per class (the families ``modelops_feedback_<name>``).
GROUP_MARGINS = ("group_correct", "group_predicted", "group_actual")


class VersionLimitError(Exception):
    """This worker counts labels of :data:`MAX_VERSIONS` versions already."""


@dataclass(frozen=True)
class Block:
    """One version's cells: ``base`` is the index of its label count; ``classes`` None for a regression;
    ``groups`` the sensitive inputs and groups its ids name (a classifier's, ``()`` for ids without)."""

    version: str
    classes: tuple[str, ...] | None
    base: int
    groups: Groups = ()

    @property
    def size(self) -> int:
        return self._own_cells + sum(len(names) for _, names in self.groups) * self.group_cells

    @property
    def _own_cells(self) -> int:
        return len(REGRESSION_CELLS) if self.classes is None else 1 + len(self.classes) ** 2

    @property
    def group_cells(self) -> int:
        """Cells per group: its labels, then correct, predicted and actual per class (a regression's: its
        absolute error)."""
        return 2 if self.classes is None else 1 + 3 * len(self.classes)

    def group_offsets(self) -> list[int]:
        """Where each sensitive input's first group's cells are, from the block's base."""
        offsets, at = [], self._own_cells
        for _, names in self.groups:
            offsets.append(at)
            at += len(names) * self.group_cells
        return offsets

    def describe(self) -> str:
        doc: dict[str, Any] = {"version": self.version, "classes": self.classes, "base": self.base}
        if self.groups:
            doc["groups"] = [[feature, list(names)] for feature, names in self.groups]
        return json.dumps(doc)


def _parse_blocks(text: str) -> list[Block]:
    """The complete lines of a blocks file (a last line still being written is skipped)."""
    blocks = []
    for line in text.split("\n")[:-1]:
        try:
            doc = json.loads(line)
            classes = tuple(str(c) for c in doc["classes"]) if doc["classes"] is not None else None
            groups = tuple((str(f), tuple(str(n) for n in names)) for f, names in doc.get("groups", ()))
            blocks.append(Block(str(doc["version"]), classes, int(doc["base"]), groups))
        except (ValueError, KeyError, TypeError):
            continue
    return blocks


class Store:
    """One worker's label counters (see the module docstring)."""

    def __init__(self, model: str, directory: Path | None = None, slot: int = 0) -> None:
        self.model = model
        self.directory = directory
        self.blocks: dict[tuple[str, tuple[str, ...] | None, Groups], Block] = {}
        self.versions: set[str] = set()
        self.size = 0
        self.values: FloatArray = np.zeros(64, dtype=np.float64)
        self._map: mmap.mmap | None = None
        self._fd: int | None = None
        self._blocks_path: Path | None = None
        if directory is not None:
            self._blocks_path = directory / f"labels-{slot}.jsonl"
            self._fd = os.open(directory / f"labels-{slot}.f64", os.O_RDWR | os.O_CREAT, 0o600)
            for block in _parse_blocks(self._blocks_path.read_text() if self._blocks_path.exists() else ""):
                self._remember(block)
            self._resize(max(64, self.size))

    def _remember(self, block: Block) -> None:
        self.blocks[(block.version, block.classes, block.groups)] = block
        self.versions.add(block.version)
        self.size = max(self.size, block.base + block.size)

    def _resize(self, cells: int) -> None:
        if self._fd is None:
            grown = np.zeros(cells, dtype=np.float64)
            grown[: len(self.values)] = self.values[:cells]
            self.values = grown
            return
        if os.fstat(self._fd).st_size < cells * 8:
            os.ftruncate(self._fd, cells * 8)
        old = self._map
        self._map = mmap.mmap(self._fd, cells * 8)
        self.values = np.frombuffer(self._map, dtype=np.float64)
        if old is not None:
            old.close()

    def block(self, version: str, classes: Sequence[str] | None, groups: Groups = ()) -> Block:
        """The block of a version (made on first use); :class:`VersionLimitError` past :data:`MAX_VERSIONS`."""
        key = (version, tuple(classes) if classes is not None else None, groups)
        found = self.blocks.get(key)
        if found is not None:
            return found
        if version not in self.versions and len(self.versions) >= MAX_VERSIONS:
            raise VersionLimitError(
                f"this server counts labels of {MAX_VERSIONS} versions already; version {version!r} would be one more"
            )
        block = Block(version, key[1], self.size, key[2])
        if block.base + block.size > len(self.values):
            self._resize(max(2 * len(self.values), block.base + block.size))
        if self._blocks_path is not None:
            with self._blocks_path.open("a") as f:
                f.write(block.describe() + "\n")
        self._remember(block)
        return block

    def add_class(self, block: Block, predicted: int, actual: int, groups: Sequence[int] = ()) -> None:
        """One label; ``groups`` is the row's group index of each of the block's sensitive inputs."""
        assert block.classes is not None
        values = self.values
        n = len(block.classes)
        values[block.base] += 1
        values[block.base + 1 + predicted * n + actual] += 1
        if not block.groups:
            return
        width = block.group_cells
        for offset, group in zip(block.group_offsets(), groups, strict=True):
            at = block.base + offset + group * width
            values[at] += 1
            if predicted == actual:
                values[at + 1 + predicted] += 1
            values[at + 1 + n + predicted] += 1
            values[at + 1 + 2 * n + actual] += 1

    def add_value(self, block: Block, predicted: float, actual: float, groups: Sequence[int] = ()) -> None:
        """One label of a regression; ``groups`` as for :meth:`add_class`."""
        error = predicted - actual
        base = block.base
        values = self.values
        values[base] += 1
        values[base + 1] += abs(error)
        values[base + 2] += error * error
        if error > 0:
            values[base + 3] += error
        else:
            values[base + 4] -= error
        for offset, group in zip(block.group_offsets(), groups, strict=True):
            at = base + offset + group * 2
            values[at] += 1
            values[at + 1] += abs(error)

    def snapshot(self) -> list[tuple[Block, FloatArray]]:
        """Every worker's blocks with their cells (only this worker's without a directory)."""
        if self.directory is None:
            return [(b, self.values[b.base : b.base + b.size]) for b in self.blocks.values()]
        out = []
        for path in sorted(self.directory.glob("labels-*.jsonl")):
            cells = path.with_suffix(".f64")
            try:
                blocks = _parse_blocks(path.read_text())
                values = np.fromfile(cells, dtype=np.float64)
            except OSError:
                continue
            out += [(b, values[b.base : b.base + b.size]) for b in blocks if b.base + b.size <= len(values)]
        return out


def _sum(snapshot: Iterable[tuple[Block, FloatArray]]) -> tuple[dict[str, float], dict[tuple[str, ...], float]]:
    """(label count per version, every other cell by (family, version, labels…)), summed."""
    labels: dict[str, float] = {}
    cells: dict[tuple[str, ...], float] = {}
    for block, values in snapshot:
        labels[block.version] = labels.get(block.version, 0.0) + float(values[0])
        if block.classes is None:
            for name, value in zip(REGRESSION_CELLS[1:], values[1 : len(REGRESSION_CELLS)], strict=True):
                key: tuple[str, ...] = (name, block.version)
                cells[key] = cells.get(key, 0.0) + float(value)
            for offset, (feature, names) in zip(block.group_offsets(), block.groups, strict=True):
                for g, group in enumerate(names):
                    for i, name in enumerate(("group_labels", "group_absolute_error")):
                        key = (name, block.version, feature, group)
                        cells[key] = cells.get(key, 0.0) + float(values[offset + 2 * g + i])
            continue
        n = len(block.classes)
        matrix = values[1 : 1 + n * n].reshape(n, n)
        for i, predicted in enumerate(block.classes):
            for j, actual in enumerate(block.classes):
                key = ("confusion", block.version, predicted, actual)
                cells[key] = cells.get(key, 0.0) + float(matrix[i, j])
        for offset, (feature, names) in zip(block.group_offsets(), block.groups, strict=True):
            for g, group in enumerate(names):
                at = offset + g * block.group_cells
                key = ("group_labels", block.version, feature, group)
                cells[key] = cells.get(key, 0.0) + float(values[at])
                for m, margin in enumerate(GROUP_MARGINS):
                    for c, label in enumerate(block.classes):
                        key = (margin, block.version, feature, group, label)
                        cells[key] = cells.get(key, 0.0) + float(values[at + 1 + m * n + c])
    return labels, cells


def families(model: str, snapshot: Iterable[tuple[Block, FloatArray]]) -> list[Metric]:
    """The ``modelops_feedback_*`` quality families of ``docs/contracts.md`` from every worker's blocks."""
    label_counts, cells = _sum(snapshot)
    base = ["model", "version"]
    total = CounterMetricFamily(
        "modelops_feedback_labels", "Labels fed back and counted, by the version that predicted.", labels=base
    )
    for version, count in sorted(label_counts.items()):
        total.add_metric([model, version], count)
    out: list[Metric] = [total]
    confusion = CounterMetricFamily(
        "modelops_feedback_confusion",
        "Labelled predictions by predicted and actual class, by the version that predicted.",
        labels=[*base, "predicted", "actual"],
    )
    margins: dict[str, dict[tuple[str, str], float]] = {"correct": {}, "predicted": {}, "actual": {}}
    regression: dict[str, list[tuple[str, float]]] = {name: [] for name in REGRESSION_CELLS[1:]}
    by_group: dict[str, list[tuple[tuple[str, ...], float]]] = {
        name: [] for name in ("group_labels", *GROUP_MARGINS, "group_absolute_error")
    }
    for key, value in sorted(cells.items()):
        if key[0] in by_group:
            by_group[key[0]].append((key[1:], value))
        elif key[0] == "confusion":
            version, predicted, actual = key[1], key[2], key[3]
            confusion.add_metric([model, version, predicted, actual], value)
            margins["predicted"][(version, predicted)] = margins["predicted"].get((version, predicted), 0.0) + value
            margins["actual"][(version, actual)] = margins["actual"].get((version, actual), 0.0) + value
            if predicted == actual:
                margins["correct"][(version, predicted)] = value
        else:
            regression[key[0]].append((key[1], value))
    out.append(confusion)
    helps = {
        "correct": "Labelled predictions that were right, by class (the confusion matrix's diagonal).",
        "predicted": "Labelled predictions, by predicted class (the confusion matrix's row sums).",
        "actual": "Labelled predictions, by actual class (the confusion matrix's column sums).",
    }
    for name, help_text in helps.items():
        out.append(_family(name, help_text, [*base, "class"], model, sorted(margins[name].items())))
    regression_help = {
        "absolute_error": "Sum of |predicted - actual| over labelled predictions (regression).",
        "squared_error": "Sum of (predicted - actual)^2 over labelled predictions (regression).",
        "overestimate": "Sum of max(predicted - actual, 0) over labelled predictions (regression).",
        "underestimate": "Sum of max(actual - predicted, 0) over labelled predictions (regression).",
    }
    for name, help_text in regression_help.items():
        out.append(_family(name, help_text, base, model, [((v,), value) for v, value in regression[name]]))
    group_help = {
        "group_labels": "Labels counted, by the group of a sensitive input (from ids naming their rows' groups).",
        "group_correct": "Labelled predictions that were right, by class and by the group of a sensitive input.",
        "group_predicted": "Labelled predictions, by predicted class and by the group of a sensitive input.",
        "group_actual": "Labelled predictions, by actual class and by the group of a sensitive input.",
        "group_absolute_error": "Sum of |predicted - actual| by the group of a sensitive input (regression).",
    }
    for name, help_text in group_help.items():
        per_class = name in GROUP_MARGINS
        extra = ["feature", "group", "class"] if per_class else ["feature", "group"]
        out.append(_family(name, help_text, [*base, *extra], model, by_group[name]))
    return [family for family in out if family.samples]


def _family(
    name: str, help_text: str, labels: list[str], model: str, samples: Iterable[tuple[tuple[str, ...], float]]
) -> Metric:
    """``modelops_feedback_<name>`` with a sample per (label values after ``model``, value)."""
    family = CounterMetricFamily(f"modelops_feedback_{name}", help_text, labels=labels)
    for key, value in samples:
        family.add_metric([model, *key], value)
    return family
