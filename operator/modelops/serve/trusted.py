"""Which types a skops artifact may hold for the model server to load it, and how that list is made.

A skops archive is a tree of nodes (``schema.json``), each naming the loader skops uses for it
and the Python type it becomes. The server loads an archive only when every node's type is
trusted (:func:`untrusted`); the trusted set is

- every numpy scalar type (data, whatever dtype a table had), from numpy itself;
- the generated list in :mod:`modelops.serve.trusted_types`: every type found in the artifacts
  that the trainer writes for the allow-listed estimators (``modelops.train.estimators``) —
  the estimators, the preprocessing pipeline around them (Pipeline, ColumnTransformer,
  StandardScaler, OneHotEncoder and what they hold once fitted), and their fitted internals
  (trees, losses, binners, neighbour trees, optimizers, random states).

:func:`derive` makes that list by training each allow-listed estimator with the real trainer
(``runner.train``), with its defaults on numeric, messy (gaps, text, many categories), binary,
multiclass and regression data, with each kind of column step (scaling, imputation, indicators),
and once per value of each of its string-valued parameters (scikit-learn's
``_parameter_constraints``; losses on binary and multiclass data, other values on the first
dataset they train on), then reading the types out of each ``model.skops``; nothing is
unpickled or loaded to do it. ``python -m modelops.serve.trusted --write`` (``make
trusted-types``) rewrites the generated module; a test fails when it is stale. A parameter
value that needs types the list lacks (say a distance metric the derivation could not fit on
its data) is refused by the server with the type named, never loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from modelops.serve import trusted_types

SCHEMA_FILE = "schema.json"
# A JSON node is parsed with json.loads, never imported: its type is only a label.
JSON_LOADER = "JsonNode"
GENERATED = Path(__file__).with_name("trusted_types.py")


def walk_nodes(schema: Any) -> Iterator[tuple[str, str]]:
    """Every (loader, module.type) pair named by a node of a skops ``schema.json`` document."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            loader, module, name = node.get("__loader__"), node.get("__module__"), node.get("__class__")
            if loader is not None or module is not None or name is not None:
                yield str(loader), f"{module}.{name}"
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def read_schema(data: bytes) -> dict[str, Any]:
    """The ``schema.json`` document of a skops archive (raises ``zipfile.BadZipFile``/``KeyError``/``ValueError``)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read(SCHEMA_FILE))
    if not isinstance(schema, dict):
        raise ValueError("schema.json is not an object")
    return schema


@cache
def numpy_types() -> frozenset[str]:
    """Every numpy scalar type, as skops names them."""
    import numpy as np

    return frozenset(f"{t.__module__}.{t.__name__}" for t in set(np.sctypeDict.values()))


@cache
def trusted() -> frozenset[str]:
    """The types the server loads from a skops archive."""
    return frozenset(trusted_types.TYPES) | numpy_types()


def untrusted(schema: Mapping[str, Any]) -> list[str]:
    """The node types and loaders in ``schema`` the server does not trust, sorted (empty: loadable)."""
    allowed_types, allowed_loaders = trusted(), frozenset(trusted_types.LOADERS)
    bad: set[str] = set()
    for loader, name in walk_nodes(schema):
        if loader == JSON_LOADER:
            continue
        if loader not in allowed_loaders:
            bad.add(f"{name} (loader {loader})")
        elif name not in allowed_types:
            bad.add(name)
    return sorted(bad)


# --- derivation (development time) ------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One training of the derivation: an allow-listed estimator, its params, a dataset."""

    class_name: str
    params: dict[str, Any]
    dataset: dict[str, Any]
    preprocessing: dict[str, Any] = dataclasses.field(default_factory=dict)
    varied: str = "defaults"  # what this case varies, for the list of what could not be trained
    alternatives: tuple[dict[str, Any], ...] = ()  # datasets to try, in order, when ``dataset`` fails
    calibration: dict[str, Any] | None = None  # ``estimator.calibration``: the final step wrapped


def _datasets(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """The datasets each task is trained on: bundled ones, and a messy table of our own.

    The messy table has gaps in a numeric and a text column (imputation, missing categories) and a
    text column with more distinct values than the trainer one-hot encodes (infrequent buckets).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 160
    frame = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "city": rng.choice([f"city-{i}" for i in range(70)], n),
        }
    )
    frame["label"] = np.where(frame["a"] + (frame["colour"] == "red") > 0.3, "yes", "no")
    frame["value"] = 2 * frame["a"] + (frame["colour"] == "red") + 0.1 * rng.normal(size=n)
    frame.loc[rng.random(n) < 0.1, "b"] = np.nan
    frame.loc[rng.random(n) < 0.1, "colour"] = None
    path = folder / "mixed.csv"
    frame.to_csv(path, index=False)
    mixed = {"uri": path.as_uri(), "features": ["a", "b", "colour", "city"]}
    return {
        "classification": [
            {"uri": "sklearn://iris", "target": "target"},
            {"uri": "sklearn://breast_cancer", "target": "target"},
            {**mixed, "target": "label"},
        ],
        "regression": [{"uri": "sklearn://diabetes", "target": "target"}, {**mixed, "target": "value"}],
    }


# Every kind of column step the trainer builds: scaling, imputation with indicators, filled categories.
_PREPROCESSING_VARIANTS: tuple[dict[str, Any], ...] = (
    {"scaleNumeric": True},
    {
        "scaleNumeric": True,
        "impute": {"numeric": "mean", "categorical": "most_frequent", "indicators": True},
    },
    {"impute": {"numeric": "constant", "categorical": "constant", "indicators": True}},
)


def _string_options(class_name: str) -> Iterator[tuple[str, str]]:
    """(param, value) for every value of every string-valued parameter scikit-learn documents."""
    from sklearn.utils._param_validation import StrOptions

    from modelops.train import estimators

    cls = estimators.load_class(class_name)
    defaults = cls().get_params(deep=False)
    for param, constraints in sorted(getattr(cls, "_parameter_constraints", {}).items()):
        for constraint in constraints:
            if type(constraint) is StrOptions:  # not Hidden(...): internal values
                for value in sorted(constraint.options - set(constraint.deprecated)):
                    if value != defaults.get(param):
                        yield param, value


# Fewer trees and iterations change no type; they only make the derivation quick.
_QUICK = {"n_estimators": 3, "max_iter": 25}


def cases(folder: Path) -> Iterator[Case]:
    """Every training of the derivation, for every allow-listed estimator."""
    from modelops.train import estimators

    datasets = _datasets(folder)
    for class_name, task in sorted(estimators.ALLOWED_ESTIMATORS.items()):
        accepted = estimators.valid_params(class_name)
        base: dict[str, Any] = {k: v for k, v in _QUICK.items() if k in accepted}
        if class_name.endswith("QuadraticDiscriminantAnalysis"):
            base["reg_param"] = 0.1  # the bundled tables are collinear; the types are the same
        for dataset in datasets[task]:
            yield Case(class_name, base, dataset)
        for preprocessing in _PREPROCESSING_VARIANTS:  # on the messy table: every column step
            yield Case(class_name, base, datasets[task][-1], preprocessing)
        if task == "classification" and class_name.endswith(".GaussianNB"):
            # Calibration wraps any classifier the same way (CalibratedClassifierCV, its calibrated
            # clones of the estimator and one calibrator per class): one estimator shows its types.
            for method in ("sigmoid", "isotonic"):
                for dataset in datasets[task][:2]:  # binary and multiclass: one or several calibrators
                    yield Case(class_name, base, dataset, calibration={"method": method, "cv": 2},
                               varied=f"calibration={method}")  # fmt: skip
        for param, value in _string_options(class_name):
            params, varied = {**base, param: value}, f"{param}={value!r}"
            if param == "loss":  # losses differ between binary and multiclass targets
                for dataset in datasets[task][:2]:
                    yield Case(class_name, params, dataset, varied=varied)
            else:  # other options do not: the first dataset they can be trained on
                yield Case(class_name, params, datasets[task][0], varied=varied, alternatives=tuple(datasets[task][1:]))


def artifact_types(case: Case, folder: Path) -> set[tuple[str, str]] | None:
    """The (loader, type) pairs of the artifact the trainer writes for ``case``; None if it cannot train."""
    from modelops.train import output, runner
    from modelops.train.config import parse_config

    config = parse_config(
        {
            "model": "derive",
            "dataset": case.dataset,
            "estimator": {
                "className": case.class_name,
                "params": case.params,
                "preprocessing": case.preprocessing,
                **({"calibration": case.calibration} if case.calibration else {}),
            },
            # Only the artifact's types matter here; permutation importance would only cost time.
            "evaluation": {"featureImportance": {"enabled": False}},
        }
    )
    out = folder / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and deprecation warnings change no type
        try:
            runner.train(config, out)
        except Exception:  # the trainer refuses (or scikit-learn raises) for some combinations
            return None  # e.g. a metric that needs metric_params, a solver that rejects a penalty
    return set(walk_nodes(read_schema((out / output.MODEL_FILE).read_bytes())))


@contextlib.contextmanager
def _reading_files_in(folder: Path) -> Iterator[None]:
    """The trainer reads ``file://`` data only inside its file roots: make the derivation's folder one."""
    from modelops.train import locations

    before = os.environ.get(locations.FILE_ROOTS_ENV)
    os.environ[locations.FILE_ROOTS_ENV] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(locations.FILE_ROOTS_ENV, None)
        else:
            os.environ[locations.FILE_ROOTS_ENV] = before


@dataclasses.dataclass(frozen=True)
class Derived:
    """Each type and loader found, with the allow-listed estimators that need it."""

    types: dict[str, set[str]]
    loaders: set[str]
    protocol: int
    skipped: list[str]


def derive(log: Any = None) -> Derived:
    """Train every case and collect what the artifacts hold (see the module docstring)."""
    types: dict[str, set[str]] = {}
    loaders: set[str] = set()
    tried: dict[str, bool] = {}  # "estimator {params}" -> trained on at least one dataset
    protocol = -1
    with tempfile.TemporaryDirectory(prefix="modelops-trusted-") as tmp, _reading_files_in(Path(tmp)):
        folder = Path(tmp)
        for case in cases(folder):
            found = artifact_types(case, folder)
            for dataset in case.alternatives:
                if found is not None:
                    break
                found = artifact_types(dataclasses.replace(case, dataset=dataset), folder)
            key = f"{case.class_name.rsplit('.', 1)[1]} {case.varied}"
            tried[key] = tried.get(key, False) or found is not None
            if found is None:
                continue
            from modelops.train import output

            schema = read_schema((folder / "out" / output.MODEL_FILE).read_bytes())
            protocol = int(schema.get("protocol", -1))
            for loader, name in found:
                if loader == JSON_LOADER:
                    continue
                loaders.add(loader)
                user = "calibration" if case.calibration else case.class_name.rsplit(".", 1)[1]
                types.setdefault(name, set()).add(user)
            if log is not None:
                log(f"{case.class_name} {case.params} {case.dataset['uri']}")
    skipped = sorted(key for key, trained in tried.items() if not trained)
    return Derived(types=types, loaders=loaders, protocol=protocol, skipped=skipped)


def _users(names: Iterable[str], total: int) -> str:
    ordered = sorted(names)
    if len([n for n in ordered if n != "calibration"]) == total:
        return "every allow-listed estimator"
    if len(ordered) > 3:
        return ", ".join(ordered[:3]) + f" and {len(ordered) - 3} more"
    return ", ".join(ordered)


def render(derived: Derived) -> str:
    """The source of :mod:`modelops.serve.trusted_types` for ``derived``."""
    import sklearn
    import skops

    from modelops.train import estimators

    total = len(estimators.ALLOWED_ESTIMATORS)
    lines = [
        '"""GENERATED by ``python -m modelops.serve.trusted --write`` (make trusted-types); do not edit.',
        "",
        "The types found in the skops artifacts the trainer writes for the allow-listed estimators, each",
        "with the estimators that need it (see :mod:`modelops.serve.trusted`). Parameter values the",
        "derivation could not train are listed at the end; their artifacts load only if they need no",
        "other types.",
        '"""',
        "",
        f"SKLEARN_VERSION = {sklearn.__version__!r}",
        f"SKOPS_VERSION = {skops.__version__!r}",
        f"PROTOCOL = {derived.protocol}",
        "",
        "LOADERS: frozenset[str] = frozenset(",
        "    {",
        *(f"        {loader!r}," for loader in sorted(derived.loaders)),
        "    }",
        ")",
        "",
        "TYPES: frozenset[str] = frozenset(",
        "    {",
        *(
            line
            for name, users in sorted(derived.types.items())
            for line in (f"        # {_users(users, total)}", f"        {name!r},")
        ),
        "    }",
        ")",
        "",
        "NOT_DERIVED: tuple[str, ...] = (",
        *(f"    {item!r}," for item in derived.skipped),
        ")",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m modelops.serve.trusted [--write | --check]``."""
    parser = argparse.ArgumentParser(prog="python -m modelops.serve.trusted", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"rewrite {GENERATED.name}")
    parser.add_argument("--verbose", action="store_true", help="name every training")
    args = parser.parse_args(argv)
    text = render(derive(log=(lambda m: print(m, file=sys.stderr)) if args.verbose else None))
    if args.write:
        GENERATED.write_text(text)
        return 0
    if GENERATED.read_text() != text:
        print(f"{GENERATED} is stale: run make trusted-types", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
