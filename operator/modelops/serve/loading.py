"""Turning a verified artifact's bytes into a model without running code from them.

``skops`` (the default): the archive's ``schema.json`` is read as plain JSON and every node's
type checked against :func:`modelops.serve.trusted.trusted` before skops builds anything, so a
file naming any other type or function is refused with the types named and nothing imported
or constructed from it; skops then loads it with that list as its own trusted list. A loaded
model is checked once more (:func:`check_structure`) before anything calls it: skops can tell
that an object is a ``Tree`` but not that its node indices stay inside its arrays, and
scikit-learn's compiled predict code indexes them without bounds checks.

``joblib``: a pickle runs whatever code it holds while it loads, so it is refused unless the
caller allows pickles (``modelops serve --allow-pickle``, which the operator passes only where the
governance policy's ``allowPickle`` permits). The sha256 check comes before either, as ever.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelops.serve import trusted, trusted_types
from modelops.serve.artifact import ArtifactError, verify_bytes
from modelops.serve.contract import ARTIFACT_FORMATS

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_MAGIC = b"\x80"  # protocol 2 and later start with PROTO
# Our archives are stored uncompressed; a compressed one may expand this much and no more.
_MAX_EXPANSION = 32
_MAX_NAMED = 5


def audit(data: bytes, artifact_format: str, where: str, *, allow_pickle: bool) -> dict[str, Any] | None:
    """Refuse (:class:`ArtifactError`) what may not be loaded, reading but never loading ``data``.

    Returns a skops archive's schema (None for an allowed pickle).
    """
    if artifact_format == "skops":
        return _audited_schema(data, where)
    if artifact_format == "joblib":
        if not allow_pickle:
            raise ArtifactError(
                f"{where} is a joblib pickle, which runs code when it is loaded; refusing it "
                "(serve skops artifacts, or pass --allow-pickle where the governance policy's allowPickle permits)"
            )
        return None
    expected = ", ".join(ARTIFACT_FORMATS)
    raise ArtifactError(f"{where}: unknown artifact format {artifact_format!r}; expected one of {expected}")


def audit_file(path: Path, trusted_sha256: str, artifact_format: str, allow_pickle: bool) -> None:
    """Verify a file's sha256, then :func:`audit` it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"cannot read artifact {path}: {exc.strerror}") from None
    verify_bytes(data, trusted_sha256, str(path))
    audit(data, artifact_format, str(path), allow_pickle=allow_pickle)


def load_model(data: bytes, artifact_format: str, where: str, *, allow_pickle: bool) -> Any:
    """The model in ``data`` (already verified against its sha256), loaded as ``artifact_format``."""
    audit(data, artifact_format, where, allow_pickle=allow_pickle)
    if artifact_format == "skops":
        return _load_skops(data, where)
    import joblib

    try:
        return joblib.load(io.BytesIO(data))
    except Exception as exc:  # unpickling can raise anything
        raise ArtifactError(f"cannot load {where}: {exc}") from None


def _schema(data: bytes, where: str) -> dict[str, Any]:
    if not data.startswith(_ZIP_MAGIC):
        hint = " (it looks like a pickle: its format is joblib, not skops)" if data.startswith(_PICKLE_MAGIC) else ""
        raise ArtifactError(f"{where} is not a skops archive{hint}; refusing it")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
            if expanded > _MAX_EXPANSION * len(data):
                raise ArtifactError(f"{where} would expand {expanded} bytes from {len(data)}; refusing it")
        return trusted.read_schema(data)
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError) as exc:
        raise ArtifactError(f"{where} is not a readable skops archive: {exc}") from None


def _audited_schema(data: bytes, where: str) -> dict[str, Any]:
    schema = _schema(data, where)
    protocol = schema.get("protocol")
    if protocol != trusted_types.PROTOCOL:
        raise ArtifactError(
            f"{where} uses skops protocol {protocol!r}; this server reads protocol {trusted_types.PROTOCOL} only"
        )
    bad = trusted.untrusted(schema)
    if bad:
        named = ", ".join(bad[:_MAX_NAMED]) + (f" and {len(bad) - _MAX_NAMED} more" if len(bad) > _MAX_NAMED else "")
        raise ArtifactError(
            f"{where} holds types the model server does not trust: {named}; refusing to load it "
            "(trusted are the types of the allow-listed estimators' pipelines, see modelops.serve.trusted_types)"
        )
    return schema


def _load_skops(data: bytes, where: str) -> Any:
    """Load an audited skops archive with the trusted types, then check its structure."""
    import skops.io

    try:
        model = skops.io.loads(data, trusted=sorted(trusted.trusted()))
    except Exception as exc:  # a malformed archive can fail anywhere in skops or a __setstate__
        raise ArtifactError(f"cannot load {where}: {type(exc).__name__}: {exc}") from None
    problem = check_structure(model)
    if problem is not None:
        raise ArtifactError(f"{where} is malformed: {problem}; refusing to load it")
    return model


# --- structure checks --------------------------------------------------------------------------


def _children(obj: Any) -> Iterator[Any]:
    import numpy as np

    if isinstance(obj, dict):
        yield from obj.values()
    elif isinstance(obj, list | tuple):
        yield from obj
    elif isinstance(obj, np.ndarray):
        if obj.dtype == object:
            yield from obj.ravel().tolist()
    elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("sklearn."):
        yield from vars(obj).values()


def _objects(model: Any) -> Iterator[tuple[Any, Any]]:
    """(object, its owner) for every object reachable from ``model`` through containers and sklearn objects."""
    seen: set[int] = set()
    stack: list[tuple[Any, Any]] = [(model, None)]
    while stack:
        obj, owner = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        yield obj, owner
        parent = obj if hasattr(obj, "n_features_in_") else owner
        stack.extend((child, parent) for child in _children(obj))


def _check_links(left: Any, right: Any, leaf: Any, count: int, what: str) -> str | None:
    """Children of a split node must come after it and inside the array (how sklearn builds trees)."""
    import numpy as np

    index = np.arange(count)
    split = ~leaf
    for name, child in (("left", left), ("right", right)):
        if np.any(split & ((child <= index) | (child >= count))):
            return f"{what}: a {name} child index points outside the tree"
    return None


def _check_tree(tree: Any, owner: Any) -> str | None:
    """A ``sklearn.tree._tree.Tree``: node links and feature indices inside bounds."""
    import numpy as np

    state = tree.__getstate__()
    nodes, count = state["nodes"], int(state["node_count"])
    if count < 1 or len(nodes) != count or np.asarray(state["values"]).shape[0] != count:
        return "a decision tree's node arrays disagree on its node count"
    leaf = nodes["left_child"] == -1
    if np.any(leaf != (nodes["right_child"] == -1)):
        return "a decision tree has a node with one child"
    problem = _check_links(nodes["left_child"], nodes["right_child"], leaf, count, "a decision tree")
    if problem is not None:
        return problem
    width = int(tree.n_features)
    if owner is not None and width != int(getattr(owner, "n_features_in_", width)):
        return f"a decision tree reads {width} features but its estimator takes {owner.n_features_in_}"
    features = nodes["feature"][~leaf]
    if np.any((features < 0) | (features >= width)):
        return "a decision tree splits on a feature index outside its input"
    return None


def _check_predictor(predictor: Any, owner: Any) -> str | None:
    """A histogram gradient boosting ``TreePredictor``: links, feature indices, no native categories."""
    import numpy as np

    nodes = predictor.nodes
    count = len(nodes)
    if count < 1:
        return "a boosted tree has no nodes"
    leaf = nodes["is_leaf"].astype(bool)
    problem = _check_links(nodes["left"], nodes["right"], leaf, count, "a boosted tree")
    if problem is not None:
        return problem
    width = int(getattr(owner, "n_features_in_", 0)) if owner is not None else 0
    features = nodes["feature_idx"][~leaf]
    if owner is None or np.any((features < 0) | (features >= width)):
        return "a boosted tree splits on a feature index outside its input"
    # The trainer one-hot encodes categories; bitset lookups for native ones are never needed.
    native = getattr(owner, "is_categorical_", None)
    if np.any(nodes["is_categorical"][~leaf]) or (native is not None and np.any(native)):
        return "a boosted tree uses native categorical splits, which the trainer never makes"
    return None


def _check_neighbours(tree: Any) -> str | None:
    """A ``KDTree``/``BallTree``: sample indices and node ranges inside the stored data."""
    import numpy as np

    data, idx_array, node_data, _ = tree.get_arrays()
    n = len(data)
    if len(idx_array) != n or np.any((idx_array < 0) | (idx_array >= n)):
        return "a neighbours tree indexes samples it does not hold"
    start, end = node_data["idx_start"], node_data["idx_end"]
    if np.any((start < 0) | (start > end) | (end > n)):
        return "a neighbours tree node covers samples it does not hold"
    return None


def check_structure(model: Any) -> str | None:
    """What makes a loaded model unsafe to call, or None (see the module docstring)."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
    from sklearn.neighbors import BallTree, KDTree
    from sklearn.tree._tree import Tree

    for obj, owner in _objects(model):
        problem = None
        if isinstance(obj, Tree):
            problem = _check_tree(obj, owner)
        elif isinstance(obj, TreePredictor):
            problem = _check_predictor(obj, owner)
        elif isinstance(obj, KDTree | BallTree):
            problem = _check_neighbours(obj)
        if problem is not None:
            return problem
    return None
