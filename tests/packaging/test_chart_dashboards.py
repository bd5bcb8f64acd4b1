"""The chart's Grafana dashboards: ConfigMaps for Grafana's dashboard sidecar, off unless asked for.

Rendered offline: no dashboard ConfigMap by default; with ``grafana.dashboards.enabled`` one per file
of ``dashboards/``, labelled as the sidecar looks for (label and value configurable), holding the
file's JSON unchanged. Each dashboard has the variables the issue asks for, every panel a query on
the ``$datasource`` variable, every variable it uses defined, and every metric it reads one the model
servers export (the table of docs/contracts.md), the operator's generated rules record (the rules
themselves, generated here) or the operator exports (rollouts, training metrics). The queries return data
against a real Prometheus in tests/prometheus/test_dashboards_live.py.
"""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import pytest
from chartkit import CHART_DIR, NAMESPACE, REPO, Render, find

import dashboardkit
from modelops.api.driftpolicy import DriftPolicySpec
from modelops.controller import metrics
from modelops.drift import bins as binning
from modelops.logic import driftrules, qualityrules

ENABLED = {"grafana": {"dashboards": {"enabled": True}}}
DASHBOARDS = dashboardkit.load()


def dashboard_maps(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in find(objects, "ConfigMap") if "-dashboard-" in o["metadata"]["name"]}


def test_no_dashboards_unless_enabled(render: Render) -> None:
    assert dashboard_maps(render()) == {}
    assert dashboard_maps(render({"grafana": {"dashboards": {"enabled": False, "label": "x"}}})) == {}


def test_one_configmap_per_dashboard_with_the_sidecars_label_and_the_files_json(render: Render) -> None:
    maps = dashboard_maps(render(ENABLED))
    assert set(maps) == {f"modelops-operator-dashboard-{name}" for name in DASHBOARDS}
    assert set(DASHBOARDS) == {"serving", "canary", "drift", "quality"}
    for name, dashboard in DASHBOARDS.items():
        cm = maps[f"modelops-operator-dashboard-{name}"]
        assert cm["metadata"]["namespace"] == NAMESPACE
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert "annotations" not in cm["metadata"]
        (key, text), *more = cm["data"].items()
        assert more == []
        assert key == f"modelops-{name}.json"  # the sidecar writes the file under this name
        assert json.loads(text) == dashboard  # shipped as is: legends' {{version}} untouched by Helm


def test_label_namespace_and_folder_annotation_are_values(render: Render) -> None:
    dashboards = {"enabled": True, "label": "example.com/dashboard", "labelValue": "yes", "namespace": "monitoring",
                  "annotations": {"grafana_folder": "ML"}}  # fmt: skip
    values = {"grafana": {"dashboards": dashboards}}
    for cm in dashboard_maps(render(values)).values():
        assert cm["metadata"]["labels"]["example.com/dashboard"] == "yes"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "ML"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"grafana": {"dashboards": {"enabled": "yes"}}}, "/grafana/dashboards/enabled"),
        ({"grafana": {"dashboards": {"label": "bad label!"}}}, "/grafana/dashboards/label"),
        ({"grafana": {"dashboards": {"labelValue": 1}}}, "/grafana/dashboards/labelValue"),
        ({"grafana": {"dashboards": {"namespace": "Monitoring"}}}, "/grafana/dashboards/namespace"),
        ({"grafana": {"dashbaords": {"enabled": True}}}, "'dashbaords' not allowed"),
    ],
)
def test_schema_rejects_wrong_dashboard_values(chart: helm_python.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        chart.render(values, name="modelops", namespace=NAMESPACE, is_install=True)
    assert message in str(caught.value)


def test_the_values_are_documented() -> None:
    readme = (CHART_DIR / "README.md").read_text()
    assert "`grafana.dashboards.enabled`" in readme
    assert "grafana:\n  dashboards:\n    enabled: false" in (CHART_DIR / "values.yaml").read_text()


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_has_a_query_on_the_datasource_variable(name: str) -> None:
    dashboard = DASHBOARDS[name]
    variables = dashboardkit.variables(dashboard)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "deployment", "version"} <= set(variables)
    panels = dashboardkit.panels(dashboard)
    assert panels
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        targets = panel.get("targets", [])
        assert targets, f"panel {panel['title']!r} has no query"
        assert len({t["refId"] for t in targets}) == len(targets)
        for target in targets:
            assert target["expr"].strip(), f"panel {panel['title']!r} {target['refId']} has an empty query"
            assert target["datasource"] == panel["datasource"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24


def test_dashboards_have_distinct_uids() -> None:
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)
    assert all(len(uid) <= 40 for uid in uids)  # Grafana's limit


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_variable_a_query_uses_is_defined_before_it(name: str) -> None:
    """Panels and variables refer only to variables defined earlier in the list (Grafana resolves in order)."""
    dashboard = DASHBOARDS[name]
    defined: list[str] = list(dashboardkit.BUILTINS)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = dashboardkit.variable_query(variable)
            dashboardkit.label_values_query(query)  # the form the live test resolves
            assert dashboardkit.used_variables(query) <= set(defined), (variable["name"], query)
            assert variable["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        defined.append(variable["name"])
    for title, ref, expr in dashboardkit.queries(dashboard):
        assert dashboardkit.used_variables(expr) <= set(defined), (title, ref, expr)


# ---------------------------------------------------------------------------------------------
# The queries read only what is really exported or recorded


def _served_metrics() -> set[str]:
    """The model server's series, from the metrics table of docs/contracts.md (histograms expanded)."""
    text = (REPO / "docs" / "contracts.md").read_text()
    section = text.split("## Model server metrics", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or not cells[1].strip().startswith("`modelops_"):
            continue
        for metric in re.findall(r"`(modelops_\w+)`", cells[1]):
            if "histogram" in cells[2]:
                names |= {f"{metric}_bucket", f"{metric}_sum", f"{metric}_count"}
            else:
                names.add(metric)
    assert "modelops_requests_total" in names
    assert "modelops_request_duration_seconds_bucket" in names
    return names


def _recorded_metrics() -> set[str]:
    """Every series the operator's generated rules record: the quality group, drift for every method."""
    groups = [qualityrules.rule_group(qualityrules.Scope("ml", "d", "m"), ["1h"])]
    reference = binning.parse_reference_stats({
        "sampleSize": 8,
        "features": [{"name": "x", "kind": "numeric", "edges": [0.0, 1.0, 2.0], "counts": [4, 4]},
                     {"name": "c", "kind": "categorical", "categories": ["a", "__other__"], "counts": [4, 4]}],
    })  # fmt: skip
    target = driftrules.Target(policy="p", namespace="ml", deployment="d", model="m", version="1")
    for method in ("psi", "jsd", "wasserstein", "ks", "chi2"):
        spec = DriftPolicySpec.model_validate({"deployment": "d", "method": method})
        groups += driftrules.rule_groups(spec, target, reference, list(reference))
    return {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_metric_a_query_reads_is_exported_or_recorded(name: str) -> None:
    known = _served_metrics() | _recorded_metrics() | set(metrics.ROLLOUT_SERIES) | {metrics.TRAINING_METRIC}
    dashboard = DASHBOARDS[name]
    texts = [expr for _, _, expr in dashboardkit.queries(dashboard)]
    texts += [dashboardkit.variable_query(v) for v in dashboard["templating"]["list"] if v["type"] == "query"]
    for text in texts:
        used = set(re.findall(r"\b(modelops_[A-Za-z0-9_:]+)", text))
        assert used, text
        assert used <= known, (sorted(used - known), text)
