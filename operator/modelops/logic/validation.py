"""Turn a resource's spec into its pydantic model, or into one message that names the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)
#: "sensitiveFeatures[1].name: " at the start of a validator's message: a field path inside the model.
_FIELD_FIRST = re.compile(r"^([A-Za-z]+(?:\[\d+\])?(?:\.[A-Za-z]+(?:\[\d+\])?)*): ")


@dataclass(frozen=True)
class Invalid:
    """Why a spec is invalid: the first offending field and every problem found."""

    field: str
    message: str
    problems: tuple[str, ...]


@dataclass(frozen=True)
class Parsed(Generic[ModelT]):
    """A spec parsed into its model, or the reason it is invalid (exactly one is set)."""

    model: ModelT | None
    invalid: Invalid | None


def field_path(loc: tuple[int | str, ...], root: str = "spec") -> str:
    """A pydantic error location as the field path users know: spec.steps[2].setWeight."""
    path = root
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part:
            path += f".{part}"
    return path


def describe(error: ValidationError, root: str = "spec") -> Invalid:
    """One readable message per problem, the first problem's field named first."""
    problems = []
    fields = []
    for item in error.errors(include_url=False):
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = field_path(loc, root)
        text = str(item["msg"])
        if item["type"] == "extra_forbidden":
            text = "unknown field"
        elif item["type"] == "missing":
            text = "required field is missing"
        elif item["type"] == "value_error":
            text = text.removeprefix("Value error, ")
            # A model's own check may name the field inside it first ("bins: …"): it belongs in the path.
            inner = _FIELD_FIRST.match(text)
            if inner:
                path, text = f"{path}.{inner[1]}".replace(".[", "["), text[inner.end() :]
        fields.append(path)
        problems.append(f"{path}: {text}")
    first = fields[0] if fields else root
    message = problems[0] if len(problems) == 1 else f"{problems[0]} (and {len(problems) - 1} more)"
    return Invalid(field=first, message=message, problems=tuple(problems))


def parse(model: type[ModelT], data: Mapping[str, Any] | None, root: str = "spec") -> Parsed[ModelT]:
    """Validate data against a model; never raises for bad input."""
    try:
        return Parsed(model=model.model_validate(dict(data or {})), invalid=None)
    except ValidationError as error:
        return Parsed(model=None, invalid=describe(error, root))
