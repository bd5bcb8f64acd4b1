"""The plugin's pure parts: views from objects with absent fields, tables, colour, nonces."""

from __future__ import annotations

import io
import re

import pytest

from modelops.plugin import card as cardpage
from modelops.plugin import cli, render, views


def version(name: str, number: int, status: dict[str, object] | None = None) -> dict[str, object]:
    body: dict[str, object] = {"metadata": {"name": name}, "spec": {"model": "iris", "version": number}}
    if status is not None:
        body["status"] = status
    return body


def test_views_tolerate_objects_the_operator_has_not_seen() -> None:
    bare = version("iris-v1", 1)
    status = views.model_status("iris", "ml", [], [bare], [{"metadata": {"name": "d"}, "spec": {"model": "iris"}}], [])
    assert status["modelVersions"] == [
        {
            "name": "iris-v1",
            "version": 1,
            "askedStage": "None",
            "grantedStage": "None",
            "format": "skops",  # spec.artifact.format's default
            "metrics": {},
            "ready": None,
            "message": None,
        }
    ]
    assert status["modelDeployments"][0]["phase"] is None
    assert views.history([bare]) == []
    card = views.model_card(bare, "ml", [], [])
    markdown = cardpage.to_markdown(card)
    assert "## Gates\n\n_none_" in markdown
    assert "## Rollouts\n\n_not deployed_" in markdown


def test_history_merges_versions_by_time_with_missing_times_last() -> None:
    v1 = version(
        "iris-v1",
        1,
        {"history": [{"from": "Staging", "to": "Production", "by": "alice", "at": "2026-11-02T09:00:00Z"}]},
    )
    v2 = version(
        "iris-v2",
        2,
        {
            "history": [{"from": "None", "to": "Staging", "by": "op", "at": "2026-11-01T09:00:00+00:00"}],
            "approvals": [{"stage": "Production", "user": "bob", "at": "2026-11-03T00:00:00Z"}],
            "rejected": {"deployment": "ml/iris", "metric": "latency", "at": "not a time"},
        },
    )
    events = views.history([v1, v2])
    assert [(e["version"], e["event"]) for e in events] == [
        ("iris-v2", "transition"),
        ("iris-v1", "transition"),
        ("iris-v2", "approval"),
        ("iris-v2", "rejection"),
    ]
    assert events[2]["by"] == "bob"
    assert events[3]["reason"] == "latency"


def test_a_models_card_is_its_production_version_else_its_newest() -> None:
    v1 = version("iris-v1", 1, {"stage": "Production"})
    v2 = version("iris-v2", 2, {"stage": "Staging"})
    v10 = version("iris-v10", 10)
    assert views.pick_version([v10, v1, v2]) is v1
    assert views.pick_version([v2, v10]) is v10
    assert views.pick_version([]) is None


def test_tables_align_and_colour_only_when_asked() -> None:
    rows = [["iris-v1", "Production", 0.96667], ["iris-v22", "Failed", None]]
    plain = render.table(["NAME", "STAGE", "F1"], rows)
    assert plain.splitlines() == [
        "NAME      STAGE       F1",
        "iris-v1   Production  0.9667",
        "iris-v22  Failed      -",
    ]
    coloured = render.table(["NAME", "STAGE", "F1"], rows, colour=True)
    assert "\033[31mFailed\033[0m" in coloured
    assert re.sub(r"\033\[[0-9;]*m", "", coloured) == plain


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_needs_a_terminal_and_no_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert render.use_colour(FakeTerminal())
    assert not render.use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not render.use_colour(FakeTerminal())


def test_nonces_are_utc_timestamps_and_distinct_even_within_one_microsecond() -> None:
    values = [cli.nonce() for _ in range(200)]
    assert len(set(values)) == 200
    assert values == sorted(values)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", values[0])


@pytest.mark.parametrize(
    ("text", "expected"),
    [("iris-v3", (None, "iris-v3")), ("mv/iris-v3", ("version", "iris-v3")), ("mdep/iris", ("deployment", "iris"))],
)
def test_targets_take_kubectl_style_kind_prefixes(text: str, expected: tuple[str | None, str]) -> None:
    allowed = {"version": cli.VERSION_PREFIXES, "deployment": cli.DEPLOYMENT_PREFIXES}
    assert cli.split_target(text, allowed) == expected


def test_an_unknown_prefix_is_a_usage_error() -> None:
    with pytest.raises(cli.UsageError, match="cannot tell what 'pod/iris' names"):
        cli.split_target("pod/iris", {"version": cli.VERSION_PREFIXES})


def test_the_card_shows_what_training_did_to_each_column() -> None:
    body = version("churn-v1", 1)
    body["spec"] = {"model": "churn", "version": 1, "lineage": {
        "dataset": {"uri": "pvc://data/customers.csv"},
        "preprocessing": {"scaleNumeric": True, "impute": {"numeric": "auto", "indicators": True}},
        "columns": [
            {"name": "age", "kind": "numeric", "missing": 312, "distinct": 72, "impute": "median",
             "indicator": True, "scaled": True, "encoding": "none"},
            {"name": "balance", "kind": "numeric", "missing": 4, "distinct": 900, "impute": "constant",
             "fillValue": "0.0", "indicator": False, "scaled": True, "encoding": "none"},
            {"name": "city", "kind": "categorical", "missing": 0, "distinct": 400, "impute": "none",
             "indicator": False, "scaled": False, "encoding": "one-hot, long tail bucketed", "categories": 49},
        ],
    }}  # fmt: skip
    card = views.model_card(body, "ml", [], [])
    assert [c["name"] for c in card["data"]["columns"]] == ["age", "balance", "city"]
    data = cardpage.to_markdown(card).split("\n## Data\n", 1)[1].split("\n## ", 1)[0]
    assert "| column | kind | missing | imputed | missing indicator | scaled | encoding |" in data
    assert "| age | numeric | 312 | median | yes | yes | none |" in data
    assert "| balance | numeric | 4 | constant (0.0) | no | yes | none |" in data
    assert "| city | categorical | 0 | no | no | no | one-hot, long tail bucketed (49 of 400 values) |" in data
    # A version registered before columns were recorded shows no such table.
    assert "What training did" not in cardpage.to_markdown(views.model_card(version("old-v1", 1), "ml", [], []))
