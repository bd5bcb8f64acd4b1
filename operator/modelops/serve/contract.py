"""The trainer's ``result.json`` as the model server needs it: signature, classes, reference bins.

Pure parsing, no I/O: :func:`parse_result` takes the decoded JSON document and returns a
:class:`ModelContract`, or raises :class:`ContractError` with a message naming the bad field.
The layout is specified in ``docs/contracts.md``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

OTHER_CATEGORY = "__other__"

NUMERIC_DATATYPES = frozenset(
    {"BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"}
)
DATATYPES = NUMERIC_DATATYPES | {"BYTES"}
ARTIFACT_FORMATS = ("skops", "joblib")


#: A served value's group when the version's fairness record does not know it (docs/fairness.md).
OTHER_GROUP = "__other__"
#: The group of a missing value, as the trainer names it.
MISSING_GROUP = "(missing)"


class ContractError(ValueError):
    """``result.json`` does not follow the contract; the message names the field."""


#: How the model saw an input's values, hence what a request value is converted to (``docs/inference.md``):
#: ``number`` a numeric feature (float64); categorical ``int``, ``float``, ``bool`` or ``string`` values;
#: ``mixed`` categories of several types (passed as they come).
KINDS = ("number", "int", "float", "bool", "string", "mixed")


@dataclass(frozen=True)
class Feature:
    """One signature input: its name, its v2 datatype, and how the model saw its values.

    ``categories`` are the recorded training values (JSON types; ``None`` for missing), if recorded.
    ``accepts_missing`` is the record's word (``None``: not recorded); the server's
    :class:`~modelops.serve.predictor.Predictor` settles it, and ``accepts_infinite``, by asking the model.
    """

    name: str
    datatype: str
    categorical: bool
    kind: str = "number"
    categories: tuple[Any, ...] | None = None
    accepts_missing: bool | None = None
    accepts_infinite: bool = False


def kind_of(datatype: str, categorical: bool, categories: Sequence[Any] | None) -> str:
    """The value kind of an input from its record: the recorded categories' types, else its datatype."""
    if not categorical:
        return "number"
    if categories:
        present = [c for c in categories if c is not None]
        if present and all(isinstance(c, bool) for c in present):
            return "bool"
        if present and all(isinstance(c, int) and not isinstance(c, bool) for c in present):
            return "int"
        if present and all(isinstance(c, int | float) and not isinstance(c, bool) for c in present):
            return "float"
        if present and all(isinstance(c, str) for c in present):
            return "string"
        if present:
            return "mixed"
    if datatype == "BOOL":
        return "bool"
    if datatype.startswith(("INT", "UINT")):
        return "int"
    if datatype.startswith("FP"):
        return "float"
    return "string"


@dataclass(frozen=True)
class NumericStats:
    """Reference bins of a numeric feature: ``edges`` has k+1 values for k bins."""

    name: str
    edges: tuple[float, ...]

    @property
    def interior(self) -> tuple[float, ...]:
        """The Prometheus ``le`` bounds: ``edges[1:-1]``."""
        return self.edges[1:-1]


@dataclass(frozen=True)
class CategoricalStats:
    """Reference categories of a categorical feature, always ending with ``__other__``."""

    name: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class SensitiveGroups:
    """A sensitive input's groups from the version's fairness record, which the server counts predictions by.

    ``groups`` are the record's group names in its order (a binned feature's: every interval's name,
    then ``(missing)`` if recorded); ``bins`` the cut points of a binned numeric feature, with
    ``bin_names`` the name of each interval (``len(bins) + 1``).
    """

    name: str
    groups: tuple[str, ...]
    bins: tuple[float, ...] | None = None
    bin_names: tuple[str, ...] | None = None


@dataclass(frozen=True)
class ModelContract:
    """What the server needs to know about a model before it loads the artifact."""

    model: str
    task: str
    artifact_path: str
    sha256: str | None
    artifact_format: str
    framework: str
    features: tuple[Feature, ...]
    predict_datatype: str
    classes: tuple[Any, ...] | None
    numeric_stats: tuple[NumericStats, ...]
    categorical_stats: tuple[CategoricalStats, ...]
    #: Why a classifier offers no ``predict_proba`` output (its estimator has no probabilities: a
    #: Perceptron, an SVC without ``probability=True``); None where it does. Not in result.json: the
    #: :class:`~modelops.serve.predictor.Predictor` settles it by asking the loaded model.
    no_probabilities: str | None = None
    sensitive: tuple[SensitiveGroups, ...] = ()

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def has_probabilities(self) -> bool:
        """Whether the model answers ``predict_proba`` (a classifier whose estimator has probabilities)."""
        return self.is_classifier and self.no_probabilities is None

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)


def _require(doc: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise ContractError(f"result.json: {where}{key} is missing or not a {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {dict: "object", list: "list", str: "string", int: "integer", float: "number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _parse_features(signature: Mapping[str, Any], categorical_names: set[str]) -> tuple[Feature, ...]:
    inputs = _require(signature, "inputs", list, "signature.")
    if not inputs:
        raise ContractError("result.json: signature.inputs is empty")
    features: list[Feature] = []
    seen: set[str] = set()
    for i, item in enumerate(inputs):
        if not isinstance(item, dict):
            raise ContractError(f"result.json: signature.inputs[{i}] is not an object")
        name = _require(item, "name", str, f"signature.inputs[{i}].")
        datatype = item.get("datatype", "FP64")
        if datatype not in DATATYPES:
            raise ContractError(f"result.json: signature.inputs[{i}].datatype {datatype!r} is not a v2 datatype")
        if name in seen:
            raise ContractError(f"result.json: signature.inputs has {name!r} twice")
        seen.add(name)
        flag = item.get("categorical")
        if flag is not None and not isinstance(flag, bool):
            raise ContractError(f"result.json: signature.inputs[{i}].categorical is not a boolean")
        # Records from before the flag: BYTES, or categorical reference statistics, mean categorical.
        categorical = flag if flag is not None else (datatype == "BYTES" or name in categorical_names)
        categories = item.get("categories")
        if categories is not None and not (
            isinstance(categories, list) and all(c is None or isinstance(c, str | int | float) for c in categories)
        ):
            raise ContractError(
                f"result.json: signature.inputs[{i}].categories is not a list of strings, numbers, booleans or nulls"
            )
        missing = item.get("acceptsMissing")
        if missing is not None and not isinstance(missing, bool):
            raise ContractError(f"result.json: signature.inputs[{i}].acceptsMissing is not a boolean")
        if datatype == "BYTES" and not categorical:
            raise ContractError(f"result.json: signature.inputs[{i}] is BYTES but not categorical")
        features.append(
            Feature(
                name=name,
                datatype=datatype,
                categorical=categorical,
                kind=kind_of(datatype, categorical, categories),
                categories=tuple(categories) if categorical and categories is not None else None,
                accepts_missing=missing,
            )
        )
    return tuple(features)


def _parse_stats(
    stats: Mapping[str, Any] | None,
) -> tuple[tuple[NumericStats, ...], tuple[CategoricalStats, ...]]:
    if not stats:
        return (), ()
    items = stats.get("features") or []
    if not isinstance(items, list):
        raise ContractError("result.json: referenceStats.features is not a list")
    numeric: list[NumericStats] = []
    categorical: list[CategoricalStats] = []
    for i, item in enumerate(items):
        where = f"referenceStats.features[{i}]."
        if not isinstance(item, dict):
            raise ContractError(f"result.json: {where[:-1]} is not an object")
        name = _require(item, "name", str, where)
        kind = item.get("kind", "numeric")
        if kind == "numeric":
            edges = _require(item, "edges", list, where)
            if len(edges) < 2 or not all(isinstance(e, int | float) and math.isfinite(e) for e in edges):
                raise ContractError(f"result.json: {where}edges needs at least two finite numbers")
            values = tuple(float(e) for e in edges)
            if any(b <= a for a, b in itertools.pairwise(values)):
                raise ContractError(f"result.json: {where}edges is not strictly increasing")
            numeric.append(NumericStats(name=name, edges=values))
        elif kind == "categorical":
            cats = _require(item, "categories", list, where)
            names = [str(c) for c in cats if str(c) != OTHER_CATEGORY]
            if len(set(names)) != len(names):
                raise ContractError(f"result.json: {where}categories has duplicates")
            categorical.append(CategoricalStats(name=name, categories=(*names, OTHER_CATEGORY)))
        else:
            raise ContractError(f"result.json: {where}kind {kind!r} is neither numeric nor categorical")
    return tuple(numeric), tuple(categorical)


def default_bin_names(bins: Sequence[float]) -> tuple[str, ...]:
    """The trainer's names of the intervals cut at ``bins``: ``<a``, ``[a, b)``, ``>=b``."""
    edges = [f"{b:g}" for b in bins]
    middle = [f"[{a}, {b})" for a, b in itertools.pairwise(edges)]
    return (f"<{edges[0]}", *middle, f">={edges[-1]}")


def _bin_names(bins: tuple[float, ...], groups: tuple[str, ...]) -> tuple[str, ...] | None:
    """Which name each interval has, from the groups a record without ``binLabels`` lists (an older record)."""
    named = default_bin_names(bins)
    present = tuple(g for g in groups if g != MISSING_GROUP)
    if set(present) <= set(named):
        return named
    # Custom labels: the record lists the intervals that held rows, in order; all of them place every label.
    return present if len(present) == len(named) else None


def _parse_sensitive(record: Any, inputs: set[str]) -> tuple[SensitiveGroups, ...]:
    """The record's features the server can see in requests: inputs of the model, not intersections."""
    if record is None:
        return ()
    if not isinstance(record, dict) or not isinstance(record.get("features"), list):
        raise ContractError("result.json: fairness is not an object with a list of features")
    found: list[SensitiveGroups] = []
    for i, item in enumerate(record["features"]):
        where = f"fairness.features[{i}]."
        if not isinstance(item, dict):
            raise ContractError(f"result.json: {where[:-1]} is not an object")
        name = _require(item, "name", str, where)
        kind = item.get("kind")
        if kind not in {"categorical", "binned"} or name not in inputs:
            continue  # an intersection, or a column the model never sees (useAsInput: false)
        groups = item.get("groups") or []
        if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
            raise ContractError(f"result.json: {where}groups is not a list of objects")
        names = tuple(str(g.get("group")) for g in groups)
        if kind == "categorical":
            found.append(SensitiveGroups(name, names))
            continue
        bins = item.get("bins")
        if not isinstance(bins, list) or not bins or not all(
            isinstance(b, int | float) and not isinstance(b, bool) and math.isfinite(b) for b in bins
        ):
            raise ContractError(f"result.json: {where}bins is not a list of finite numbers")
        cuts = tuple(float(b) for b in bins)
        recorded = item.get("binLabels")
        if recorded is not None and (
            not isinstance(recorded, list) or len(recorded) != len(cuts) + 1
            or not all(isinstance(n, str) for n in recorded)
        ):  # fmt: skip
            raise ContractError(f"result.json: {where}binLabels is not a list of one name more than bins")
        bin_names = tuple(recorded) if recorded is not None else _bin_names(cuts, names)
        if bin_names is not None:
            # Every interval is a group live, also one that held no held-out row: the bins bound them.
            live = (*bin_names, *(g for g in names if g not in bin_names))
            found.append(SensitiveGroups(name, live, cuts, bin_names))
    return tuple(found)


def parse_result(doc: Any) -> ModelContract:
    """Parse a decoded ``result.json`` document."""
    if not isinstance(doc, dict):
        raise ContractError("result.json: the document is not an object")
    model = _require(doc, "model", str, "")
    artifact = _require(doc, "artifact", dict, "")
    signature = _require(doc, "signature", dict, "")
    stats = doc.get("referenceStats")
    if stats is not None and not isinstance(stats, dict):
        raise ContractError("result.json: referenceStats is not an object")
    numeric, categorical = _parse_stats(stats)
    features = _parse_features(signature, {c.name for c in categorical})
    names = {f.name for f in features}
    stat_names = [s.name for s in numeric] + [s.name for s in categorical]
    for stat_name in stat_names:
        if stat_name not in names:
            raise ContractError(f"result.json: referenceStats names {stat_name!r}, which is not a signature input")
    feature_by_name = {f.name: f for f in features}
    for n in numeric:
        if feature_by_name[n.name].categorical:
            raise ContractError(f"result.json: feature {n.name!r} is categorical but has numeric referenceStats")
    for c in categorical:
        if not feature_by_name[c.name].categorical:
            raise ContractError(f"result.json: feature {c.name!r} is numeric but has categorical referenceStats")

    raw_classes = signature.get("classes")
    if raw_classes is not None and (not isinstance(raw_classes, list) or not raw_classes):
        raise ContractError("result.json: signature.classes is not a non-empty list")
    task = doc.get("task") or ("classification" if raw_classes else "regression")
    if task not in {"classification", "regression"}:
        raise ContractError(f"result.json: task {task!r} is neither classification nor regression")

    outputs: Sequence[Any] = signature.get("outputs") or []
    predict_datatype = ""
    for out in outputs:
        if isinstance(out, dict) and out.get("name") == "predict" and out.get("datatype") in DATATYPES:
            predict_datatype = out["datatype"]
    if not predict_datatype:
        if task == "regression":
            predict_datatype = "FP64"
        elif raw_classes and all(isinstance(c, bool) for c in raw_classes):
            predict_datatype = "BOOL"
        elif raw_classes and all(isinstance(c, int) for c in raw_classes):
            predict_datatype = "INT64"
        else:
            predict_datatype = "BYTES"

    path = artifact.get("path")
    # Without a format, a result.json predates skops artifacts: what it names is a joblib pickle.
    artifact_format = artifact.get("format") or (
        "skops" if isinstance(path, str) and path.endswith(".skops") else "joblib"
    )
    if artifact_format not in ARTIFACT_FORMATS:
        raise ContractError(
            f"result.json: artifact.format {artifact_format!r} is not one of {', '.join(ARTIFACT_FORMATS)}"
        )
    path = path or f"model.{artifact_format}"
    if not isinstance(path, str) or path.startswith("/") or ".." in path.split("/"):
        raise ContractError("result.json: artifact.path must be a relative path inside the model dir")
    sha = artifact.get("sha256")
    if sha is not None and not isinstance(sha, str):
        raise ContractError("result.json: artifact.sha256 is not a string")
    framework = doc.get("framework")
    framework_name = framework.get("name", "scikit-learn") if isinstance(framework, dict) else "scikit-learn"
    return ModelContract(
        model=model,
        task=task,
        artifact_path=path,
        sha256=sha.lower() if sha else None,
        artifact_format=artifact_format,
        framework=str(framework_name),
        features=features,
        predict_datatype=predict_datatype,
        classes=tuple(raw_classes) if raw_classes else None,
        numeric_stats=numeric,
        categorical_stats=categorical,
        sensitive=_parse_sensitive(doc.get("fairness"), names),
    )
