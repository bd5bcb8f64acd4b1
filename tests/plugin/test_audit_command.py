"""``kubectl modelops audit MODEL``: the governance trail of all a model's versions, from their status."""

from __future__ import annotations

from plugin.pluginkit import Run, Seeded


def test_the_trail_of_a_model_as_json(seeded: Seeded, run: Run) -> None:
    result = run("audit", "iris", "-o", "json")
    assert result.code == 0, result.err
    data = result.json()
    assert (data["model"], data["namespace"]) == ("iris", "ml")
    events = data["events"]
    assert {e["name"] for e in events} == {"iris-v1", "iris-v2", "iris-v3"}  # wine's version is left out
    times = [e["at"] for e in events]
    assert times == sorted(times)
    v1 = [(e["event"], e.get("to"), e["by"]) for e in events if e["name"] == "iris-v1"]
    assert v1 == [
        ("granted", "Staging", "system:serviceaccount:modelops-system:modelops"),
        ("approved", None, "alice"),
        ("granted", "Production", "alice"),
        ("archived", "Archived", "system:serviceaccount:modelops-system:modelops"),
    ]
    [rollback] = [e for e in events if e["event"] == "rolledBack"]
    assert (rollback["name"], rollback["deployment"], rollback["evidence"]["metric"]) == ("iris-v3", "ml/iris",
                                                                                          "error-rate")  # fmt: skip
    assert len({e["id"] for e in events}) == len(events)


def test_the_trail_of_a_model_as_markdown(seeded: Seeded, run: Run) -> None:
    result = run("audit", "iris")
    assert result.code == 0, result.err
    text = result.out
    assert text.startswith("# Audit trail: model iris\n")
    assert "| at | version | event | stage | by | evidence |" in text
    assert "| 2026-11-02T09:00:00Z | iris-v1 | granted | Staging → Production | alice | 1/1 approvals |" in text
    assert "| iris-v3 | rolledBack |" in text
    assert "ml/iris: error-rate = 0.12" in text


def test_a_model_without_versions_is_an_error(seeded: Seeded, run: Run) -> None:
    result = run("audit", "nope")
    assert (result.code, result.err) == (1, "error: model nope has no ModelVersions in namespace ml\n")
