"""``kubectl modelops card --html``: one page that fetches nothing, with every section's tables and the
charts drawn as inline SVG, and every string from a resource escaped (an attacker names a column)."""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelops.plugin import card as cardpage
from plugin import htmlkit
from plugin.cardkit import CHARTS, TABLES, VERSION, card_view
from plugin.pluginkit import Run, Seeded


def page(version: dict[str, Any] | None = None) -> htmlkit.Element:
    return htmlkit.parse(cardpage.to_html(card_view(version)))


def test_the_page_has_every_section_as_a_table_and_the_charts_as_svg() -> None:
    root = page()
    assert [t.attrs["data-table"] for t in root.find_all("table")] == TABLES
    charts = {svg.attrs["data-chart"]: svg for svg in root.find_all("svg")}
    assert {name: len(svg.find_all("rect", **{"class": "bar"})) for name, svg in charts.items()} == CHARTS
    headings = [h.text() for h in root.find_all("h2")]
    assert headings == [
        "Description", "Intended use", "Limitations", "Owners", "Data", "Training", "Metrics", "Fairness",
        "Feature importance", "Gates", "Approvals", "Stage history", "Rollouts", "Drift",
    ]  # fmt: skip
    assert root.find_all("title")[0].text() == "Model card: loans-v2"
    gates = root.find_all("table", data_table="gates")[0]
    assert gates.rows()[1][4] == "FAIL"
    assert [td.attrs.get("class") for td in gates.find_all("td") if td.text() == "FAIL"] == ["bad"]
    assert ["2026-11-18T11:00:00Z", "loans", "loans-v2", "loans-v1", "RolledBack", "error-rate 0.2 > 0.05"] in (
        root.find_all("table", data_table="rollout-history")[0].rows()
    )
    analysis = root.find_all("table", data_table="analysis")[0].rows()
    assert ["loans", "accuracy", "Successful", "0.9", "2026-11-20T11:00:00Z", "live accuracy from 812 labels"] in (
        analysis
    )
    text = root.text()
    assert "Probabilities: sigmoid (5 folds); calibration error measured in 10 bins on 400 held-out rows" in text
    assert "expected calibration error 0.08 is above 0.05" in text


def test_the_page_fetches_nothing_and_allows_no_script() -> None:
    text = cardpage.to_html(card_view())
    root = htmlkit.parse(text)
    assert htmlkit.external_references(root) == []
    (csp,) = [m for m in root.find_all("meta") if m.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert "default-src 'none'" in str(csp.attrs["content"])
    assert "script-src" not in str(csp.attrs["content"])
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)


def test_the_importance_bars_are_as_long_as_their_values() -> None:
    (chart,) = page().find_all("svg", data_chart="importance")
    widths = [float(str(r.attrs["width"])) for r in chart.find_all("rect", **{"class": "bar"})]
    assert widths[0] > widths[1] * 10  # 0.12 against 0.003 on one scale
    assert [t.text() for t in chart.find_all("title")][1:] == ["income: 0.12 ± 0.01", "region: 0.003 ± 0.002"]


def test_a_drift_chart_is_scaled_to_its_threshold_and_marks_it() -> None:
    (chart,) = page().find_all("svg", data_chart="drift:loans-drift")
    (bar,) = chart.find_all("rect", **{"class": "bar"})
    (mark,) = chart.find_all("line", **{"class": "mark"})
    (zero,) = chart.find_all("line", **{"class": "zero"})
    x0, limit = float(str(zero.attrs["x1"])), float(str(mark.attrs["x1"]))
    # a score of 0.04 against a threshold of 0.2: a fifth of the way to the mark
    assert abs((float(str(bar.attrs["width"])) / (limit - x0)) - 0.2) < 0.01


def test_a_negative_importance_draws_left_of_zero() -> None:
    version = copy.deepcopy(VERSION)
    version["spec"]["featureImportance"]["features"][1]["mean"] = -0.05
    (chart,) = page(version).find_all("svg", data_chart="importance")
    (zero,) = chart.find_all("line", **{"class": "zero"})
    bars = chart.find_all("rect", **{"class": "bar"})
    x0 = float(str(zero.attrs["x1"]))
    assert float(str(bars[0].attrs["x"])) == x0
    assert float(str(bars[1].attrs["x"])) + float(str(bars[1].attrs["width"])) == x0


HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</table><iframe src=https://evil.example/></iframe>",
    "<svg onload=alert(1)>",
    "' onmouseover='alert(1)",
    "<style>@import url(https://evil.example/x.css)</style>",
]


def hostile_version(text: str) -> dict[str, Any]:
    """The full version with the text wherever a user chooses a string: model, card, columns, groups, metrics.

    Its own name stays: the deployment finds the version by it, and that changes the page's shape.
    """
    version = copy.deepcopy(VERSION)
    spec, status = version["spec"], version["status"]
    spec["model"] = text
    spec["modelCard"] = {"description": text, "intendedUse": text, "limitations": text, "owners": [text]}
    spec["lineage"]["dataset"]["uri"] = text
    spec["lineage"]["columns"][0]["name"] = text
    spec["lineage"]["params"] = {text: text}
    spec["metrics"] = {"accuracy": 0.91, "ece": 0.08, f"m:{text}": 1.0}
    spec["fairness"]["features"][0]["name"] = text
    spec["fairness"]["features"][0]["groups"][0]["group"] = text
    spec["featureImportance"]["features"][0]["feature"] = text
    status["gates"][0]["metric"] = text
    status["approvals"][0]["user"] = text
    status["history"][0]["reason"] = text
    return version


def test_strings_from_resources_are_text_never_markup() -> None:
    baseline = [e.tag for e in page(hostile_version("benign")).iter()]
    for text in HOSTILE:
        root = page(hostile_version(text))
        assert htmlkit.external_references(root) == [], text
        assert [e.tag for e in root.iter()] == baseline, text
        assert f"Model {text}, version 2" in root.find_all("p")[0].text()
        (columns,) = root.find_all("table", data_table="columns")
        assert columns.rows()[0][0] == text
        (chart,) = root.find_all("svg", data_chart="importance")
        assert chart.find_all("title")[1].text().startswith(text[:20])


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_any_text_leaves_the_page_shaped_as_it_was(text: str) -> None:
    """Whatever a column, group or card text holds, the page has the same elements and no fetch."""
    baseline = [(e.tag, sorted(e.attrs)) for e in page(hostile_version("benign")).iter()]
    root = page(hostile_version(text))
    assert [(e.tag, sorted(e.attrs)) for e in root.iter()] == baseline
    assert htmlkit.external_references(root) == []


def test_a_version_with_nothing_recorded_still_makes_a_page() -> None:
    root = htmlkit.parse(cardpage.to_html(card_view({"metadata": {"name": "bare"}, "spec": {}})))
    assert root.find_all("svg") == []
    assert [t.attrs["data-table"] for t in root.find_all("table")] == []
    assert "not measured" in root.text()


def test_card_html_from_the_cluster(seeded: Seeded, run: Run) -> None:
    result = run("card", "iris", "--html")
    assert result.code == 0, result.err
    assert result.out.startswith("<!DOCTYPE html>")
    root = htmlkit.parse(result.out)
    assert root.find_all("h1")[0].text() == "Model card: iris-v2"
    assert htmlkit.external_references(root) == []
    both = run("card", "iris", "--html", "-o", "json")
    assert both.code == 2
    assert "--html and -o json ask for two formats" in both.err
