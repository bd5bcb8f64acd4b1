"""Generate the CustomResourceDefinitions from the pydantic API models.

Pydantic writes JSON Schema (draft 2020-12); a CRD wants a *structural* OpenAPI v3.0
schema. The pass below inlines every ``$ref``, folds ``anyOf[X, null]`` into ``X``
(the API server prunes nulls of non-nullable fields, which is what a user who wrote
``field: null`` means), drops titles and ``additionalProperties: false`` (the server
prunes unknown fields instead), rewrites ``exclusiveMinimum`` into the v3.0 form, and
marks free-form values with ``x-kubernetes-preserve-unknown-fields``. Defaults are
emitted only where a model declares one that is not ``None``.

``modelops crds --output crds/`` writes one file per kind; ``--check`` fails when the
files differ from what the models generate.
"""

from __future__ import annotations

import copy
import difflib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from modelops.api import CATEGORY, GROUP, KINDS, VERSION, KindInfo

JsonDict = dict[str, Any]

_DROP_KEYS = {"title", "$defs", "discriminator"}


def _inline(node: Any, defs: JsonDict) -> Any:
    """Replace every ``$ref`` with a copy of its definition, recursively."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].split("/")[-1]
        target = copy.deepcopy(defs[name])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        target.update(siblings)  # a field's own description beats its model's docstring
        return _inline(target, defs)
    return {key: _inline(value, defs) for key, value in node.items()}


def _structural(node: Any) -> Any:
    """Turn an inlined JSON Schema node into a structural OpenAPI v3.0 node."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    for key in _DROP_KEYS:
        node.pop(key, None)

    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        non_null = [option for option in any_of if option != {"type": "null"}]
        if len(non_null) < len(any_of) and len(non_null) == 1:
            # Optional[X]: take X, keeping the field's own description and extensions.
            del node["anyOf"]
            merged = dict(non_null[0])
            merged.update(node)
            node = {key: value for key, value in merged.items() if key not in _DROP_KEYS}
        elif node.get("x-kubernetes-int-or-string"):
            node["anyOf"] = [{"type": "integer"}, {"type": "string"}]

    if node.get("default", "absent") is None:
        del node["default"]
    if "const" in node:
        node["enum"] = [node.pop("const")]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(node.get(bound), int | float) and not isinstance(node.get(bound), bool):
            node[flag] = node[bound]
            node[bound] = True

    if node.get("additionalProperties") is True:
        node["x-kubernetes-preserve-unknown-fields"] = True
    if isinstance(node.get("additionalProperties"), bool) or node.get("x-kubernetes-preserve-unknown-fields"):
        node.pop("additionalProperties", None)
    if node == {} or (set(node) == {"description"}):
        # Any: a free-form JSON value of any type.
        node["x-kubernetes-preserve-unknown-fields"] = True

    for key in ("properties",):
        if key in node:
            node[key] = {name: _structural(child) for name, child in node[key].items()}
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            node[key] = _structural(node[key])
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        raise ValueError(f"a schema the CRD cannot express (anyOf): {node}")
    return node


def schema_of(model: Any) -> JsonDict:
    """The structural OpenAPI v3.0 schema of a pydantic model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.get("$defs", {})
    inlined = _inline({k: v for k, v in raw.items() if k != "$defs"}, defs)
    result: JsonDict = _structural(inlined)
    return result


def crd_for(info: KindInfo) -> JsonDict:
    """The whole CustomResourceDefinition of one kind."""
    spec_schema = schema_of(info.spec)
    status_schema = schema_of(info.status)
    # Defaulting status to {} makes the server show observedGeneration: -1 on a new object.
    status_schema["default"] = {}
    root: JsonDict = {
        "type": "object",
        "description": info.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "The versioned schema of this object: modelops.io/v1alpha1.",
            },
            "kind": {"type": "string", "description": f"The kind of this object: {info.kind}."},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
    }
    columns = [
        {
            "name": column.name,
            "type": column.type,
            "jsonPath": column.json_path,
            "description": column.description,
            **({"priority": column.priority} if column.priority else {}),
            **({"format": column.format} if column.format else {}),
        }
        for column in info.columns
    ]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": info.crd_name,
            "labels": {"app.kubernetes.io/part-of": "modelops-operator"},
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def render(info: KindInfo) -> str:
    """One CRD as YAML text, with a header that says it is generated."""
    header = "# Generated by `modelops crds` from operator/modelops/api — do not edit by hand.\n"
    body = yaml.safe_dump(crd_for(info), sort_keys=False, width=100, allow_unicode=True)
    return header + body


def file_name(info: KindInfo) -> str:
    return f"{GROUP}_{info.plural}.yaml"


def generate() -> dict[str, str]:
    """File name → YAML text, for every kind."""
    return {file_name(info): render(info) for info in KINDS}


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or ``--check``) the CRDs; 0 done, 1 stale or not writable, 2 bad usage — one line on stderr."""
    from modelops.cli import ArgumentParser

    parser = ArgumentParser(prog="modelops crds", description=__doc__.splitlines()[0])
    parser.add_argument("--output", "-o", default="crds", help="directory to write into (default: crds)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; fail when the directory differs from the models"
    )
    args = parser.parse_args(argv)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        print(f"modelops crds: error: --output {out} is a file, not a directory (see --help)", file=sys.stderr)
        return 2
    files = generate()
    if args.check:
        stale = []
        for name, text in files.items():
            path = out / name
            current = path.read_text() if path.exists() else ""
            if current != text:
                stale.append(name)
                sys.stdout.writelines(
                    difflib.unified_diff(
                        current.splitlines(keepends=True), text.splitlines(keepends=True), str(path), "generated"
                    )
                )
        if stale:
            print(
                f"modelops crds: {', '.join(stale)} differ from the models; run 'modelops crds -o {out}'",
                file=sys.stderr,
            )
            return 1
        return 0
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text)
            print(f"wrote {out / name}")
    except OSError as error:
        where = error.filename or out
        print(f"modelops crds: error: cannot write {where}: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0
