"""Every reason comes from one table (``logic.conditions.Reason``), each documented in docs/reasons.md."""

from __future__ import annotations

import ast
import pathlib
import re
from collections.abc import Iterator

from modelops.logic.conditions import Reason

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "modelops"
DOC = ROOT / "docs" / "reasons.md"
CAMEL = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z0-9]*)*$")
EVENT_TYPES = ("Normal", "Warning")
STATUSES = (True, False, "True", "False", "Unknown")
BOOLS = (True, False)


def _text(node: ast.AST | None) -> list[ast.Constant]:
    """The string literals a value can be (a constant, either side of a conditional)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node]
    if isinstance(node, ast.IfExp):
        return _text(node.body) + _text(node.orelse)
    return []


def _named_reason(node: ast.AST) -> bool:
    name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
    return name == "reason" or name.endswith("_reason") or name.startswith("REASON_")


def _is(node: ast.AST, values: tuple[object, ...]) -> bool:
    return isinstance(node, ast.Constant) and node.value in values and type(node.value) in (bool, str)


def reason_literals(tree: ast.AST) -> Iterator[ast.Constant]:
    """String literals where a reason goes: ``reason=``, an Event's (type, reason, message), a
    condition's (type, status, reason, message), a (status, reason, message) verdict, a name for a
    reason, a comparison with one, and the reason of a Decision."""
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "reason":
            yield from _text(node.value)
        elif isinstance(node, ast.Call) and node.args and _is(node.args[0], EVENT_TYPES) and len(node.args) > 1:
            yield from _text(node.args[1])
        elif isinstance(node, ast.Tuple) and len(node.elts) == 3 and _is(node.elts[0], EVENT_TYPES + BOOLS):
            yield from _text(node.elts[1])
        elif isinstance(node, ast.Tuple) and len(node.elts) == 4 and _is(node.elts[1], STATUSES):
            yield from _text(node.elts[2])
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_named_reason(t) for t in targets):
                yield from _text(node.value)
        elif isinstance(node, ast.Compare) and _named_reason(node.left):
            for right in node.comparators:
                yield from _text(right)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("Decision", "Verdict"):
            for arg in node.args[1:]:  # the first is a stage or a phase
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and CAMEL.match(arg.value):
                    yield arg


def sources() -> Iterator[tuple[pathlib.Path, ast.AST]]:
    for folder in ("controller", "logic"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            yield path, ast.parse(path.read_text())


def test_no_reason_is_spelled_out_where_the_table_has_it() -> None:
    """Reasons are written as ``Reason.X``; a literal in a reason's place must at least be in the table."""
    unknown = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value}"
        for path, tree in sources()
        for node in reason_literals(tree)
        if CAMEL.match(node.value) and node.value not in set(Reason)
    ]
    assert unknown == [], "reasons missing from logic.conditions.Reason"


def test_the_scan_finds_reasons_where_they_go() -> None:
    """The scan is not vacuous: it finds the literals in every place a reason is written."""
    tree = ast.parse(
        "a(reason='Aa')\nb('Warning', 'Bb', 'm')\nc = [('Normal', 'Cc', 'm')]\nd = ('T', True, 'Dd', 'm')\n"
        "REASON_E = 'Ee'\nif x.reason == 'Ff': pass\nDecision(True, False, 'Gg', 'm')\nreason = 'Hh' if y else 'Ii'\n"
        "def f(): return False, 'Jj', 'm'\n"
    )
    assert sorted(node.value for node in reason_literals(tree)) == [
        "Aa", "Bb", "Cc", "Dd", "Ee", "Ff", "Gg", "Hh", "Ii", "Jj",
    ]  # fmt: skip


def test_every_reason_has_a_meaning_and_is_camel_case() -> None:
    for reason in Reason:
        assert CAMEL.match(reason.value), reason
        assert reason.meaning.strip(), reason
    assert len({r.value for r in Reason}) == len(Reason)


def _documented() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Za-z0-9]+)` \| (.+?) \|$", DOC.read_text(), flags=re.MULTILINE)
    return dict(rows)


def test_docs_list_every_reason_with_its_meaning() -> None:
    expected = {r.value: r.meaning for r in Reason}
    table = "\n".join(f"| `{name}` | {meaning} |" for name, meaning in expected.items())
    assert _documented() == expected, f"docs/reasons.md must list, in a table:\n{table}"
