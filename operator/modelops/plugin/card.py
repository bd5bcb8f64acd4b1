"""The model card as a document, rendered as Markdown or as one self-contained HTML page.

``document(card)`` turns the card view (``views.model_card``) into a list of blocks
(headings, paragraphs, bullet lists, tables, bar charts); ``markdown`` and ``html`` render the
same blocks, so the two formats cannot say different things. Pure functions, no I/O.

The HTML page fetches nothing: its style is inline, its charts are SVG drawn here, and a
Content-Security-Policy forbids every fetch and every script, so an auditor can open a card
received by mail offline. Every string from a resource is escaped (a column may be named
``<script>``); the policy is the second line of defence, not the first.
"""

from __future__ import annotations

import html as htmllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from modelops.api.modelversion import MAX_TRUSTED_ECE

# --- blocks ------------------------------------------------------------------------------------

#: An inline run of text: style "" (plain), "b" (strong), "i" (emphasis) or "code".
Span = tuple[str, str]


def b(text: Any) -> Span:
    return ("b", str(text))


def i(text: Any) -> Span:
    return ("i", str(text))


def code(text: Any) -> Span:
    return ("code", str(text))


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    spans: tuple[Span | str, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[tuple[Span | str, ...], ...]


@dataclass(frozen=True)
class Table:
    name: str  # what the table holds, for the HTML's data-table attribute
    headers: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    spread: float | None = None


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    bars: tuple[Bar, ...]
    marks: tuple[float, ...] = ()  # values drawn as dashed lines across the bars (e.g. a threshold)


Block = Heading | Para | Bullets | Table | Chart


def para(*spans: Span | str) -> Para:
    return Para(spans)


def table(name: str, headers: Sequence[str], rows: Iterable[Iterable[Any]]) -> Table:
    return Table(name, tuple(headers), tuple(tuple(row) for row in rows))


def text_of(value: Any) -> str:
    """A cell's text: '—' when absent, floats to four significant digits."""
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --- the card as blocks ------------------------------------------------------------------------


def _imputed(column: Mapping[str, Any]) -> str:
    strategy = column.get("impute")
    if strategy in (None, "none"):
        return "no"
    return f"constant ({column.get('fillValue')})" if strategy == "constant" else str(strategy)


def _encoding(column: Mapping[str, Any]) -> str:
    encoding = str(column.get("encoding") or "—")
    if column.get("kind") == "categorical" and column.get("categories") is not None:
        return f"{encoding} ({column.get('categories')} of {column.get('distinct')} values)"
    return encoding


#: Per-group columns of the fairness tables, in the order shown.
GROUP_COLUMNS = ("selectionRate", "accuracy", "precision", "recall", "falsePositiveRate", "mae", "meanPrediction")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fairness(record: Any) -> list[Block]:
    """Each sensitive feature's gaps, a row per group (small ones marked), and a chart of selection rates."""
    out: list[Block] = [Heading(2, "Fairness")]
    if not isinstance(record, Mapping) or not record.get("features"):
        return [*out, para(i("not measured (spec.evaluation.sensitiveFeatures of the TrainingRun)"))]
    selection: tuple[Span | str, ...] = (
        ("positive class ", code(record["positiveClass"])) if record.get("positiveClass") else ("per class",)
    )
    out.append(
        para(
            f"On {record.get('rows')} held-out rows ({record.get('library') or 'fairlearn'}); selection: ",
            *selection,
            f"; groups under {record.get('minGroupSize')} rows are marked insufficient.",
        )
    )
    for feature in record["features"]:
        if not isinstance(feature, Mapping):
            continue
        how = feature.get("kind")
        if feature.get("bins"):
            how = f"binned at {', '.join(f'{b:g}' for b in feature['bins'])}"
        used = "an input" if feature.get("usedAsInput") else "not an input"
        out.append(Heading(3, f"{feature.get('name')} ({how}; {used})"))
        gaps: list[Span | str] = []
        for key, value in (feature.get("metrics") or {}).items():
            gaps += [*([", "] if gaps else []), f"{key} ", b(text_of(value))]
        out.append(Para(tuple(gaps)) if gaps else para(i("no gap is defined")))
        groups = [g for g in feature.get("groups") or [] if isinstance(g, Mapping)]
        shown = [c for c in GROUP_COLUMNS if any(c in g for g in groups)]
        by_class = any(g.get("selectionRateByClass") for g in groups)
        headers = ["group", "rows", *shown] + (["selection rate by class"] if by_class else []) + ["evidence"]
        rows = (
            [g.get("group"), g.get("count"), *(g.get(c) for c in shown)]
            + ([", ".join(f"{k}: {v:.3g}" for k, v in (g.get("selectionRateByClass") or {}).items())]
               if by_class else [])
            + ["insufficient" if g.get("insufficient") else "ok"]
            for g in groups
        )  # fmt: skip
        out.append(table(f"fairness:{feature.get('name')}", headers, rows))
        bars = [
            Bar(str(g.get("group")), value)
            for g in groups
            if (value := _number(g.get("selectionRate"))) is not None
        ]
        if bars:
            out.append(Chart(f"selection-rate:{feature.get('name')}", f"Selection rate by {feature.get('name')}",
                             tuple(bars)))  # fmt: skip
    return out


def _importance(record: Any) -> list[Block]:
    """Permutation importance per input column, most important first, as a table and a chart."""
    out: list[Block] = [Heading(2, "Feature importance")]
    if not isinstance(record, Mapping) or not record.get("features"):
        return [*out, para(i("not recorded"))]
    out.append(
        para(
            f"Drop of {record.get('scoring')} (baseline {text_of(record.get('baseline'))}) when a column is shuffled: "
            f"{record.get('repeats')} shuffles each, {record.get('rows')} held-out rows, seed {record.get('seed')}."
        )
    )
    entries = [e for e in record["features"] if isinstance(e, Mapping)]
    out.append(table("importance", ["feature", "mean", "std"], ([e.get("feature"), e.get("mean"), e.get("std")]
                                                               for e in entries)))  # fmt: skip
    bars = [
        Bar(str(e.get("feature")), value, _number(e.get("std")))
        for e in entries
        if (value := _number(e.get("mean"))) is not None
    ]
    out.append(Chart("importance", f"Drop of {record.get('scoring')} when shuffled (mean ± std)", tuple(bars)))
    return out


def _data(data: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [Heading(2, "Data")]
    dataset = data.get("dataset") or {}
    items: list[tuple[Span | str, ...]] = []
    if dataset:
        items.append(("Dataset: ", code(dataset.get("uri"))))
        if dataset.get("sha256"):
            items.append(("SHA-256: ", code(dataset.get("sha256"))))
        if dataset.get("rows") is not None:
            items.append((f"Rows: {dataset.get('rows')}",))
        if dataset.get("target"):
            items.append(("Target: ", code(dataset.get("target"))))
        if dataset.get("testSize") is not None:
            items.append((f"Held out for the metrics: {dataset.get('testSize')} (seed {dataset.get('seed')})",))
    else:
        items.append(("Dataset: ", i("not recorded")))
    out.append(Bullets(tuple(items)))
    columns = data.get("columns") or []
    if columns:
        out.append(para("What training did to each column:"))
        out.append(table("columns", ["column", "kind", "missing", "imputed", "missing indicator", "scaled", "encoding"],
                         ([c.get("name"), c.get("kind"), c.get("missing"), _imputed(c),
                           "yes" if c.get("indicator") else "no", "yes" if c.get("scaled") else "no",
                           _encoding(c)] for c in columns)))  # fmt: skip
    features = data.get("referenceFeatures") or []
    if features:
        out.append(para(f"Reference statistics ({data.get('referenceSampleSize')} rows):"))
        out.append(table("reference", ["feature", "kind", "bins"], ([f["name"], f["kind"], f["bins"]]
                                                                   for f in features)))  # fmt: skip
    return out


def _training(card: Mapping[str, Any]) -> list[Block]:
    training = card.get("training") or {}
    artifact = card.get("artifact") or {}
    items: list[tuple[Span | str, ...]] = []
    if artifact:
        kind = artifact.get("format") or "skops"
        items.append(("Artifact: ", code(artifact.get("uri")), f" ({kind}, sha256 ", code(artifact.get("sha256")), ")"))
    run = training.get("trainingRun")
    if isinstance(run, Mapping):
        items.append((f"TrainingRun: {run.get('name')}",))
    for key, label in (("estimator", "Estimator"), ("image", "Image"), ("sklearnVersion", "scikit-learn")):
        if training.get(key):
            items.append((f"{label}: ", code(training[key])))
    if training.get("params"):
        params = ", ".join(f"{k}={v}" for k, v in sorted(training["params"].items()))
        items.append((f"Parameters: {params}",))
    calibration = training.get("calibration")
    if isinstance(calibration, Mapping):
        how = str(calibration.get("method"))
        if calibration.get("cv"):
            how += f" ({calibration['cv']} folds)"
        items.append((f"Probabilities: {how}; calibration error measured in {calibration.get('bins')} bins on "
                      f"{calibration.get('rows')} held-out rows",))  # fmt: skip
    return [Heading(2, "Training"), *([Bullets(tuple(items))] if items else [])]


def _metrics(metrics: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [Heading(2, "Metrics")]
    if not metrics:
        return [*out, para(i("none"))]
    out.append(table("metrics", ["metric", "value"], sorted(metrics.items())))
    ece = _number(metrics.get("ece"))
    if ece is not None and ece > MAX_TRUSTED_ECE:
        out.append(para(b("Calibration:"), f" expected calibration error {ece:.4g} is above {MAX_TRUSTED_ECE}; "
                        "its probabilities, and live quality estimated from them, are not to be trusted."))  # fmt: skip
    return out


def _verdict(gate: Mapping[str, Any]) -> str:
    verdict = "pass" if gate.get("passed") else "FAIL"
    if gate.get("insufficientEvidence"):
        verdict += f" (insufficient evidence: {gate['insufficientEvidence']})"
    return verdict


def _governance(card: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [Heading(2, "Gates")]
    gates = card.get("gates") or []
    rows = ([g.get("stage"), g.get("metric"), f"{g.get('op')} {g.get('threshold')}", g.get("value"), _verdict(g),
             g.get("source")] for g in gates)  # fmt: skip
    headers = ["stage", "metric", "needs", "value", "verdict", "source"]
    out.append(table("gates", headers, rows) if gates else para(i("none")))

    out.append(Heading(2, "Approvals"))
    approvals = card.get("approvals") or []
    rows = ([a.get("stage"), a.get("user"), a.get("reviewer"), a.get("at")] for a in approvals)
    out.append(table("approvals", ["stage", "approved by", "reviewer", "at"], rows) if approvals else para(i("none")))

    out.append(Heading(2, "Stage history"))
    transitions = card.get("history") or []
    rows = ([t.get("at"), t.get("from"), t.get("to"), t.get("by"), t.get("reason")] for t in transitions)
    out.append(table("history", ["at", "from", "to", "by", "reason"], rows) if transitions else para(i("none")))
    return out


def _rollouts(card: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [Heading(2, "Rollouts")]
    rollouts = card.get("rollouts") or []
    rows = ([r.get("name"), r.get("role"), r.get("phase"), r.get("trafficPercent")] for r in rollouts)
    out.append(table("rollouts", ["deployment", "role", "phase", "traffic %"], rows) if rollouts
               else para(i("not deployed")))  # fmt: skip
    rejected = card.get("rejected")
    if isinstance(rejected, Mapping):
        out.append(
            para(
                b("Rejected"),
                f" by a canary on {rejected.get('deployment')} at {rejected.get('at')}: "
                f"{rejected.get('metric')} = {text_of(rejected.get('value'))}"
                + (f" ({rejected.get('message')})" if rejected.get("message") else ""),
            )
        )
    records = card.get("rolloutHistory") or []
    if records:
        out.append(para("Rollouts of this version, and rollbacks from it or to it:"))
        out.append(table("rollout-history", ["at", "deployment", "version", "from", "result", "message"],
                         ([r.get("at"), r.get("deployment"), r.get("version"), r.get("fromVersion"), r.get("result"),
                           r.get("message")] for r in records)))  # fmt: skip
    checks = [(r.get("name"), a) for r in rollouts for a in r.get("analysis") or [] if isinstance(a, Mapping)]
    if checks:
        out.append(para("Live analysis (the latest measurement of each check, error rate, latency and quality):"))
        out.append(table("analysis", ["deployment", "check", "phase", "value", "at", "message"],
                         ([name, a.get("name"), a.get("phase"), a.get("value"), a.get("at"), a.get("message")]
                          for name, a in checks)))  # fmt: skip
    return out


def _drift(card: Mapping[str, Any]) -> list[Block]:
    out: list[Block] = [Heading(2, "Drift")]
    drift = card.get("drift") or []
    if not drift:
        return [*out, para(i("no DriftPolicy watches this version's deployments"))]
    for policy in drift:
        state = {True: "drifted", False: "no drift"}.get(policy.get("drifted"), "not evaluated yet")
        out.append(
            para(
                "DriftPolicy ",
                b(policy["name"]),
                f" on {policy['deployment']} ({policy.get('method')}): {state}, "
                f"last evaluation {policy.get('lastEvaluation') or '—'}.",
            )
        )
        scores = [f for f in policy.get("features") or [] if isinstance(f, Mapping)]
        if scores:
            rows = ([f.get("name"), f.get("score"), f.get("threshold"), "yes" if f.get("drifted") else "no"]
                    for f in scores)  # fmt: skip
            out.append(table(f"drift:{policy['name']}", ["feature", "score", "threshold", "drifted"], rows))
            bars = [Bar(str(f.get("name")), value) for f in scores if (value := _number(f.get("score"))) is not None]
            limits = sorted({v for f in scores if (v := _number(f.get("threshold"))) is not None})
            if bars:
                out.append(Chart(f"drift:{policy['name']}", f"Drift score by feature ({policy.get('method')}), "
                                 "dashed: the threshold", tuple(bars), tuple(limits)))  # fmt: skip
        if policy.get("retrains"):
            out.append(para("Retrains: " + ", ".join(str(r) for r in policy["retrains"])))
    return out


def document(card: Mapping[str, Any]) -> list[Block]:
    """The model card's blocks: a section per topic, 'none' where a topic has nothing yet."""
    out: list[Block] = [
        Heading(1, f"Model card: {card['name']}"),
        para("Model ", b(card.get("model")), ", version ", b(card.get("version")), ", namespace ",
             code(card["namespace"]), ". Stage: ", b(card.get("grantedStage")), f" (asked: {card.get('askedStage')})."),
    ]  # fmt: skip
    info = card.get("modelCard") or {}
    for title, key in (("Description", "description"), ("Intended use", "intendedUse"), ("Limitations", "limitations")):
        out += [Heading(2, title), para(str(info[key])) if info.get(key) else para(i("not given"))]
    owners = info.get("owners") or []
    out += [Heading(2, "Owners"), Bullets(tuple((str(o),) for o in owners)) if owners else para(i("not given"))]
    out += _data(card.get("data") or {})
    out += _training(card)
    out += _metrics(card.get("metrics") or {})
    out += _fairness(card.get("fairness"))
    out += _importance(card.get("featureImportance"))
    out += _governance(card)
    out += _rollouts(card)
    out += _drift(card)
    return out


# --- Markdown ------------------------------------------------------------------------------------

_MD_STYLE = {"": "{}", "b": "**{}**", "i": "_{}_", "code": "`{}`"}


def _md_spans(spans: Iterable[Span | str]) -> str:
    return "".join(s if isinstance(s, str) else _MD_STYLE[s[0]].format(s[1]) for s in spans)


def _md_cell(value: Any) -> str:
    return text_of(value).replace("|", "\\|").replace("\n", " ")


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text]
    if isinstance(block, Para):
        return [_md_spans(block.spans)]
    if isinstance(block, Bullets):
        return ["- " + _md_spans(item) for item in block.items]
    if isinstance(block, Table):
        lines = ["| " + " | ".join(block.headers) + " |", "|" + "|".join(" --- " for _ in block.headers) + "|"]
        return lines + ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in block.rows]
    return []  # a chart's numbers are in the table beside it


def markdown(blocks: Iterable[Block]) -> str:
    """Blocks as Markdown, one blank line between blocks."""
    parts = ["\n".join(lines) for lines in map(_md_block, blocks) if lines]
    return "\n\n".join(parts).rstrip() + "\n"


# --- HTML ----------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    """Text for an element's content or a quoted attribute: &, <, >, " and ' escaped."""
    return htmllib.escape(str(value), quote=True)


_HTML_TAG = {"b": "strong", "i": "em", "code": "code"}


def _html_spans(spans: Iterable[Span | str]) -> str:
    out = []
    for span in spans:
        if isinstance(span, str):
            out.append(esc(span))
        else:
            tag = _HTML_TAG[span[0]]
            out.append(f"<{tag}>{esc(span[1])}</{tag}>")
    return "".join(out)


def _cell_class(text: str) -> str:
    if text.startswith("FAIL") or text in ("insufficient", "RolledBack", "Failed", "Aborted"):
        return ' class="bad"'
    return ""


def _html_table(block: Table) -> str:
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in block.headers)
    rows = []
    for row in block.rows:
        cells = [text_of(v) for v in row]
        rows.append("<tr>" + "".join(f"<td{_cell_class(c)}>{esc(c)}</td>" for c in cells) + "</tr>")
    return (
        f'<table data-table="{esc(block.name)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


# Chart geometry, in SVG user units.
LABEL_WIDTH, PLOT_WIDTH, VALUE_WIDTH, ROW_HEIGHT, BAR_HEIGHT, PAD = 190, 380, 70, 24, 14, 8
LABEL_CHARS = 28


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def svg_chart(chart: Chart) -> str:
    """A horizontal bar chart: one bar per entry from zero, a whisker for its spread, its value beside it.

    Negative values (a column whose shuffling helped) draw left of the zero line.
    """
    ends = [0.0, *chart.marks]
    for bar in chart.bars:
        spread = abs(bar.spread or 0.0)
        ends += [bar.value - spread, bar.value + spread]
    low, high = min(ends), max(ends)
    if high - low <= 0:
        high = low + 1.0

    def x(value: float) -> float:
        return LABEL_WIDTH + (value - low) / (high - low) * PLOT_WIDTH

    width = LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH
    height = PAD * 2 + ROW_HEIGHT * max(len(chart.bars), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-chart="{esc(chart.name)}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{esc(chart.title)}</title>",
    ]
    zero = x(0.0)
    for index, bar in enumerate(chart.bars):
        top = PAD + index * ROW_HEIGHT
        middle = top + ROW_HEIGHT / 2
        left, right = sorted((zero, x(bar.value)))
        parts.append(
            f'<g class="row"><title>{esc(bar.label)}: {esc(text_of(bar.value))}'
            + (f" ± {esc(text_of(bar.spread))}" if bar.spread is not None else "")
            + "</title>"
            f'<text x="{LABEL_WIDTH - 6}" y="{middle + 4:.1f}" text-anchor="end">{esc(_short(bar.label))}</text>'
            f'<rect class="bar" x="{left:.1f}" y="{middle - BAR_HEIGHT / 2:.1f}" width="{max(right - left, 1):.1f}" '
            f'height="{BAR_HEIGHT}"/>'
        )
        if bar.spread:
            a, c = x(bar.value - abs(bar.spread)), x(bar.value + abs(bar.spread))
            parts.append(f'<line class="spread" x1="{a:.1f}" x2="{c:.1f}" y1="{middle:.1f}" y2="{middle:.1f}"/>')
        parts.append(
            f'<text class="value" x="{LABEL_WIDTH + PLOT_WIDTH + 6}" y="{middle + 4:.1f}">'
            f"{esc(text_of(bar.value))}</text></g>"
        )
    parts.append(f'<line class="zero" x1="{zero:.1f}" x2="{zero:.1f}" y1="{PAD / 2}" y2="{height - PAD / 2}"/>')
    for mark in chart.marks:
        parts.append(
            f'<line class="mark" x1="{x(mark):.1f}" x2="{x(mark):.1f}" y1="{PAD / 2}" y2="{height - PAD / 2}">'
            f"<title>{esc(text_of(mark))}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)


# No fetch of any kind, no script: the page is complete as it is.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #1b1f23; background: #fff; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; border-bottom: 2px solid #1b1f23; padding-bottom: 6px; }
h2 { font-size: 20px; margin-top: 32px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 16px; margin-top: 20px; }
p { white-space: pre-line; }
code { font: 13px ui-monospace, monospace; background: #f3f4f6; padding: 1px 4px; border-radius: 3px;
       word-break: break-all; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.bad { color: #a40e26; font-weight: 600; }
svg.chart { display: block; margin: 8px 0 16px; font: 12px system-ui, sans-serif; }
svg.chart rect.bar { fill: #2f6fb2; }
svg.chart line.spread { stroke: #1b1f23; stroke-width: 1.5; }
svg.chart line.zero { stroke: #57606a; stroke-width: 1; }
svg.chart line.mark { stroke: #a40e26; stroke-width: 1.5; stroke-dasharray: 4 3; }
svg.chart text { fill: #1b1f23; }
@media print { main { max-width: none; } h2 { break-after: avoid; } table, svg { break-inside: avoid; } }
"""


def _html_block(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{esc(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        return f"<p>{_html_spans(block.spans)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_html_spans(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    return svg_chart(block)


def html(blocks: Sequence[Block]) -> str:
    """Blocks as one HTML page that needs nothing but itself."""
    title = next((b.text for b in blocks if isinstance(b, Heading)), "Model card")
    body = "\n".join(_html_block(block) for block in blocks)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
        "</body>\n</html>\n"
    )


def to_markdown(view: Mapping[str, Any]) -> str:
    """The card view (``views.model_card``) as Markdown."""
    return markdown(document(view))


def to_html(view: Mapping[str, Any]) -> str:
    """The card view (``views.model_card``) as a self-contained HTML page."""
    return html(document(view))


def _audit_detail(record: Mapping[str, Any]) -> str:
    """The evidence of an audit record in a few words."""
    evidence = record.get("evidence") or {}
    if record.get("event") == "rolledBack":
        return f"{record.get('deployment')}: {evidence.get('metric')} = {text_of(evidence.get('value'))}"
    if record.get("event") == "approved" and evidence.get("reviewer"):
        return f"reviewer {evidence['reviewer']}, asserted by {evidence.get('assertedBy')}"
    return str(record.get("reason") or "")


def audit_markdown(trail: Mapping[str, Any]) -> str:
    """A model's audit trail (``kubectl modelops audit``) as Markdown: one row per record, oldest first."""
    records = [r for r in trail.get("events") or [] if isinstance(r, Mapping)]
    rows = (
        [r.get("at"), r.get("name"), r.get("event"),
         r.get("stage") or (f"{r.get('from')} → {r.get('to')}" if r.get("to") else None), r.get("by"),
         _audit_detail(r)]
        for r in records
    )  # fmt: skip
    blocks: list[Block] = [
        Heading(1, f"Audit trail: model {trail.get('model')}"),
        para("Namespace ", code(trail.get("namespace")), f"; {len(records)} record(s) from the versions that "
             "still exist. Deleted versions and earlier stage requests are in the operator's audit log only."),
        table("audit", ["at", "version", "event", "stage", "by", "evidence"], rows) if records else para(i("none")),
    ]  # fmt: skip
    return markdown(blocks)
