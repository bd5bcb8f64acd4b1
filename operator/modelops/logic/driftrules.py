"""The PrometheusRule of a DriftPolicy: recording rules that score drift from live histograms, and alerts.

The model server exports, per served version, a histogram ``modelops_feature`` per numeric
feature whose ``le`` buckets are the feature's interior reference edges, and counters
``modelops_feature_category_total`` per category of a categorical feature (unseen ones count
as ``__other__``). Only these counts leave the pod. Over the policy's window:

``modelops_drift:feature_bucket:increase`` / ``modelops_drift:feature_category:increase``
    the increase of every bucket/category, summed over the serving pods;
``modelops_drift:feature_samples`` / ``modelops_drift:samples``
    live inputs in the window per feature (the ``+Inf`` bucket, the sum of the categories),
    and per version (rows: the largest per-feature total);
``modelops_drift:feature_bin:ratio{bin}``
    the live proportion q per reference bin: bin ``i`` of a numeric feature is the difference of
    the adjacent cumulative buckets ``le=edges[i+1]`` and ``le=edges[i]`` (bin 0 is
    ``le=edges[1]`` itself, the last bin ``+Inf`` minus ``le=edges[-2]``), divided by ``+Inf``;
    a categorical feature's bins are its categories;
``modelops_drift:feature_reference:ratio{bin}``
    the reference proportions p from referenceStats, written into the rule as constants;
``modelops_drift:feature_psi``
    PSI = sum over bins of (q - p) * ln(q / p), both proportions floored at
    ``PSI_EPSILON`` (1e-4, the drift library's own floor) so that an empty bin on either side
    gives a large but finite term instead of an infinite one -- the same number
    ``modelops.drift.compare_binned(method="psi")`` computes from the same counts.

Every method of ``spec.method`` gets its own recording rules and alert, each the same number
the drift library computes from the same counts (``modelops.drift.methods``):

``jsd``: ``modelops_drift:feature_jsd``
    the Jensen-Shannon distance sqrt(D / ln 2), D = (sum p ln(p/m) + sum q ln(q/m)) / 2 with
    m = (p + q) / 2 and 0 ln 0 = 0 (a bin empty on one side adds nothing for that side);
``chi2``: ``modelops_drift:feature_chi2:statistic``, ``:dof``, ``:critical``
    the chi-squared statistic of the 2 x k table of reference and live counts,
    N1 N2 sum (p - q)^2 / (N1 p + N2 q) over the bins not empty on both sides, with Yates'
    correction at one degree of freedom (as ``scipy.stats.chi2_contingency``); drifted when
    p-value < threshold, i.e. when the statistic is above ``chi2.isf(threshold, dof)``,
    written into the rule for every degree of freedom the feature can have;
``ks``: ``modelops_drift:feature_cdf:gap{edge}``, ``modelops_drift:feature_ks:statistic``, ``:critical``
    the largest gap between the reference's and the live cumulative proportions at the
    interior edges (read straight from the cumulative buckets); drifted when the p-value
    ``kstwo.sf(D, en)`` < threshold, en = round(N1 N2 / (N1 + N2)) rounded half to even as
    numpy does, i.e. when D is above ``kstwo.isf(threshold, en)``: written into the rule as a
    table for en < 150 and above that as a polynomial in 1/sqrt(en) fitted to scipy's own
    values (relative error below 1e-9, checked by the tests);
``wasserstein``: ``modelops_drift:feature_cdf:gap{edge}``, ``modelops_drift:feature_wasserstein``
    the area between the two piecewise-linear CDFs (values uniform within a bin, the open
    first and last bins spanning the outer edges), bin by bin from the gaps at its two edges,
    divided by the reference's standard deviation under the same model (at least 1e-3).

Every recorded series carries ``drift_policy="<namespace>/<name>"`` and ``deployment``. The
alert ``ModelInputDrift`` fires per feature when the policy's method says drift while the
window holds at least ``minSamples`` inputs; it is labelled with model, version,
deployment, feature, method, severity and the policy's extra labels.

Series are selected with ``namespace=~"<ns>|"`` (in a cluster the ServiceMonitor adds the
pods' namespace; a Prometheus without that label matches too) and ``deployment="<name>"``:
the ModelDeployment's ServiceMonitor relabels every series of its pods with it, so two
deployments serving one version in one namespace never mix their inputs.
"""

from __future__ import annotations

import decimal
import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.drift import bins as binning
from modelops.drift.methods import DEFAULT_THRESHOLDS, DRIFTED_WHEN, PSI_EPSILON, WASSERSTEIN_MIN_SCALE
from modelops.logic.analysis import parse_duration
from modelops.logic.names import owner_reference

JsonDict = dict[str, Any]

FEATURE_BUCKET: Final = "modelops_feature_bucket"
FEATURE_CATEGORY: Final = "modelops_feature_category_total"
BUCKET_INCREASE: Final = "modelops_drift:feature_bucket:increase"
CATEGORY_INCREASE: Final = "modelops_drift:feature_category:increase"
FEATURE_SAMPLES: Final = "modelops_drift:feature_samples"
SAMPLES: Final = "modelops_drift:samples"
BIN_RATIO: Final = "modelops_drift:feature_bin:ratio"
REFERENCE_RATIO: Final = "modelops_drift:feature_reference:ratio"
PSI: Final = "modelops_drift:feature_psi"
# The other methods' series (see the module docstring).
BIN_REFERENCE: Final = "modelops_drift:feature_bin:reference"
BIN_MIXTURE: Final = "modelops_drift:feature_bin:mixture"
REFERENCE_SAMPLES: Final = "modelops_drift:feature_reference:samples"
JSD: Final = "modelops_drift:feature_jsd"
CHI2_CELLS: Final = "modelops_drift:feature_bin:chi2_cells"
CHI2_DOF: Final = "modelops_drift:feature_chi2:dof"
CHI2_RAW: Final = "modelops_drift:feature_chi2:uncorrected"
CHI2_YATES: Final = "modelops_drift:feature_chi2:deviation"
CHI2_STATISTIC: Final = "modelops_drift:feature_chi2:statistic"
CHI2_CRITICAL: Final = "modelops_drift:feature_chi2:critical"
CDF_GAP: Final = "modelops_drift:feature_cdf:gap"
KS_STATISTIC: Final = "modelops_drift:feature_ks:statistic"
KS_EN: Final = "modelops_drift:feature_ks:effective_samples"
KS_CRITICAL: Final = "modelops_drift:feature_ks:critical"
WASSERSTEIN: Final = "modelops_drift:feature_wasserstein"
ALERT: Final = "ModelInputDrift"
POLICY_LABEL: Final = "modelops.io/drift-policy"
INF_LE: Final = 'le="+Inf"'


@dataclass(frozen=True)
class Target:
    """Whose series the rules read: the policy, its deployment, and the served model version."""

    policy: str
    namespace: str
    deployment: str
    model: str
    version: str
    uid: str | None = None

    @property
    def policy_id(self) -> str:
        return f"{self.namespace}/{self.policy}"


def quote(text: str) -> str:
    """A PromQL string literal (Go escapes; JSON's are a subset)."""
    return json.dumps(text)


def client_float(value: float) -> str:
    """An ``le`` as prometheus_client's floatToGoString writes it (what ``modelops serve`` exports)."""
    text = repr(float(value))
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+0{dot - 1}"
    return text


def go_float(value: float) -> str:
    """Go's strconv.FormatFloat(v, 'g', -1, 64): the shortest digits, the exponent form below 1e-4 or from 1e+21."""
    if value == 0:
        return "0"
    sign, digits, exponent = decimal.Decimal(repr(float(value))).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(str(d) for d in digits)
    power = len(text) - 1 + exponent
    prefix = "-" if sign else ""
    if power < -4 or power >= 21:
        body = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{body}e{'+' if power >= 0 else '-'}{abs(power):02d}"
    if power >= len(text) - 1:
        return prefix + text + "0" * (power - len(text) + 1)
    if power >= 0:
        return f"{prefix}{text[: power + 1]}.{text[power + 1 :]}"
    return f"{prefix}0.{'0' * (-power - 1)}{text}"


def le_spellings(edge: float) -> list[str]:
    """How an ``le`` value may be written: prometheus_client's form (what the server exports),
    Python's repr, Go's, and Prometheus 3's normalised form (Go's with '.0' on integers)."""
    go = go_float(edge)
    forms = [client_float(edge), repr(float(edge)), go, go if re.search(r"[.eE]", go) else go + ".0"]
    unique: list[str] = []
    for form in forms:
        if form not in unique:
            unique.append(form)
    return unique


def le_matcher(edge: float) -> str:
    return quote("|".join(re.escape(form) for form in le_spellings(edge)))


def prom_duration(text: str) -> str:
    """A Duration ('1.5m', '10m', '500ms') as Prometheus accepts it: whole ms or s."""
    milliseconds = round(parse_duration(text) * 1000)
    if milliseconds % 1000 == 0:
        return f"{milliseconds // 1000}s"
    return f"{milliseconds}ms"


def series_selector(target: Target, *extra: str) -> str:
    parts = [f"namespace=~{quote(re.escape(target.namespace) + '|')}", f"deployment={quote(target.deployment)}",
             f"model={quote(target.model)}", f"version={quote(target.version)}", *extra]  # fmt: skip
    return "{" + ", ".join(parts) + "}"


def _policy(target: Target, *extra: str) -> str:
    return "{" + ", ".join([f"drift_policy={quote(target.policy_id)}", *extra]) + "}"


def _replacement(text: str) -> str:
    return text.replace("$", "$$")


def _feature_regex(names: Sequence[str]) -> str:
    return quote("|".join(re.escape(name) for name in names))


def _numeric_ratio(target: Target, feature: binning.NumericBins) -> str:
    def bucket(le: str) -> str:
        return BUCKET_INCREASE + _policy(target, f"feature={quote(feature.name)}", le)

    total = bucket(INF_LE)
    interior = [float(edge) for edge in feature.interior]
    bounds = [bucket(f"le=~{le_matcher(edge)}") for edge in interior] + [total]
    parts = []
    for index, upper in enumerate(bounds):
        count = upper if index == 0 else f"({upper} - ignoring(le) {bounds[index - 1]})"
        ratio = f"{count} / ignoring(le) ({total} > 0)"
        parts.append(f'label_replace({ratio}, "bin", "{index}", "", "")')
    return "\n  or ".join(parts)


def _categorical_ratio(target: Target, feature: binning.CategoricalBins) -> str:
    counts = CATEGORY_INCREASE + _policy(target, f"feature={quote(feature.name)}")
    ratio = f"{counts} / ignoring(category) group_left() (sum without (category) ({counts}) > 0)"
    return f'label_replace({ratio}, "bin", "$1", "category", "(.*)")'


def bin_names(feature: binning.FeatureBins) -> list[str]:
    if isinstance(feature, binning.NumericBins):
        return [str(index) for index in range(feature.counts.size)]
    return list(feature.categories)


def reference_proportions(feature: binning.FeatureBins) -> list[float]:
    """The reference's proportions per bin, as the drift library computes them (counts / total)."""
    total = float(feature.counts.sum())
    if total <= 0:
        return [0.0 for _ in range(feature.counts.size)]
    return [float(share) for share in feature.counts / feature.counts.sum()]


def _constant(value: float, **labels: str) -> str:
    expr = f"vector({float(value)!r})"
    for name, text in labels.items():
        expr = f"label_replace({expr}, {quote(name)}, {quote(_replacement(text))}, \"\", \"\")"
    return expr


def _reference(features: Sequence[binning.FeatureBins]) -> str:
    parts = []
    for feature in features:
        for name, proportion in zip(bin_names(feature), reference_proportions(feature), strict=True):
            parts.append(_constant(proportion, feature=feature.name, bin=name))
    return "\n  or ".join(parts)


def _psi(target: Target) -> str:
    live = f"clamp_min({BIN_RATIO}{_policy(target)}, {PSI_EPSILON!r})"
    reference = f"clamp_min({REFERENCE_RATIO}{_policy(target)}, {PSI_EPSILON!r})"
    return (
        f"sum by ({GROUP}) (\n"
        f"  ({live} - on(feature, bin) group_left {reference})\n"
        f"  * ln({live} / on(feature, bin) group_left {reference})\n)"
    )


# --- the other methods ---------------------------------------------------------------------------

# Label sets: GROUP is one feature of one version; a bin series has GROUP plus bin (and le or category).
GROUP: Final = "namespace, model, version, feature"
NOT_BIN: Final = "ignoring(bin, le, category)"
LN2: Final = math.log(2.0)
# Below this a bin's |gap| sum is zero for the crossing term; any positive float would do.
TINY: Final = 1e-300
# kstwo.isf is tabulated for en below this; above it a polynomial in 1/sqrt(en) (see ks_critical).
KS_TABLE_BELOW: Final = 150
KS_FIT_DEGREE: Final = 6
KS_FIT_POINTS: Final = 40
KS_FIT_MAX_N: Final = 10**9


def _samples(target: Target, numeric: bool, categorical: bool) -> str:
    parts = []
    if numeric:
        parts.append(f"sum without (le) ({BUCKET_INCREASE}{_policy(target, INF_LE)})")
    if categorical:
        parts.append(f"sum without (category) ({CATEGORY_INCREASE}{_policy(target)})")
    return " or ".join(parts)


def _aligned_reference(target: Target) -> str:
    """The reference proportion p on each live bin series' labels, so that p and q match one to one."""
    return f"{BIN_RATIO}{_policy(target)} * 0 + on(feature, bin) group_left {REFERENCE_RATIO}{_policy(target)}"


def _jsd(target: Target) -> str:
    q, p, m = (name + _policy(target) for name in (BIN_RATIO, BIN_REFERENCE, BIN_MIXTURE))
    divergence = f"(sum by ({GROUP}) (({p} > 0) * ln({p} / {m})) + sum by ({GROUP}) (({q} > 0) * ln({q} / {m}))) / 2"
    return f"sqrt(clamp_min({divergence}, 0) / {LN2!r})"


def _chi2_raw(target: Target) -> str:
    """N1 N2 sum (p - q)^2 / (N1 p + N2 q) over the bins with a count on either side."""
    q, p, den = (name + _policy(target) for name in (BIN_RATIO, BIN_REFERENCE, CHI2_CELLS))
    n1, n2 = REFERENCE_SAMPLES + _policy(target), FEATURE_SAMPLES + _policy(target)
    return f"sum by ({GROUP}) (({p} - {q}) ^ 2 / ({den} > 0)) * on(feature) group_left {n1} * on({GROUP}) {n2}"


def _chi2_cells(target: Target) -> str:
    q, p = BIN_RATIO + _policy(target), BIN_REFERENCE + _policy(target)
    n1, n2 = REFERENCE_SAMPLES + _policy(target), FEATURE_SAMPLES + _policy(target)
    return f"{p} * on(feature) group_left {n1} + {q} * {NOT_BIN} group_left {n2}"


def _chi2_yates(target: Target) -> str:
    """|observed - expected| of every cell of a 2 x 2 table: N1 N2 sum |p - q| / (2 (N1 + N2))."""
    q, p = BIN_RATIO + _policy(target), BIN_REFERENCE + _policy(target)
    n1, n2 = REFERENCE_SAMPLES + _policy(target), FEATURE_SAMPLES + _policy(target)
    return (
        f"sum by ({GROUP}) (abs({p} - {q})) * on(feature) group_left {n1} * on({GROUP}) {n2}\n"
        f"/ on({GROUP}) (2 * ({n2} + on(feature) group_left {n1}))"
    )


def _chi2_statistic(target: Target) -> str:
    """scipy's chi2_contingency: with one degree of freedom each |O - E| shrinks by min(0.5, |O - E|)."""
    raw, dof, d = (name + _policy(target) for name in (CHI2_RAW, CHI2_DOF, CHI2_YATES))
    factor = f"(clamp_min({d} - 0.5, 0) / clamp_min({d}, {TINY!r})) ^ 2"
    return f"({raw} * {factor} and {dof} == 1)\nor {raw}"


def chi2_dofs(features: Sequence[binning.FeatureBins]) -> list[int]:
    """Every degree of freedom a feature's table can have: bins with a count on either side, less one."""
    dofs: set[int] = set()
    for feature in features:
        occupied = int((feature.counts > 0).sum())
        dofs.update(range(max(occupied - 1, 1), feature.counts.size))
    return sorted(dofs)


@functools.lru_cache(maxsize=64)
def chi2_critical(alpha: float, dof: int) -> float:
    """The statistic above which chi2_contingency's p-value is below ``alpha``."""
    from scipy import stats

    return float(stats.chi2.isf(alpha, dof))


def _table(series: str, values: Mapping[int, float]) -> str:
    return "\nor ".join(f"({series} == {key}) * 0 + {value!r}" for key, value in values.items())


@functools.lru_cache(maxsize=64)
def ks_fit(alpha: float) -> tuple[tuple[float, ...], float, float, tuple[float, ...]]:
    """kstwo.isf(alpha, n) for n below KS_TABLE_BELOW, and the polynomial for the rest.

    Above about 140 scipy evaluates kstwo with smooth asymptotic formulas, and
    ``isf(alpha, n) * sqrt(n)`` is a smooth function of ``u = 1 / sqrt(n)``: a degree-6
    least-squares polynomial through 40 integer n from KS_TABLE_BELOW to 1e9 reproduces it
    within 1e-10 relative. Returns (table for n = 1..149, offset, scale, coefficients):
    isf(alpha, n) = sum(c_k t^k) * u with t = offset + scale * u.
    """
    from scipy import stats

    table = tuple(float(v) for v in stats.kstwo.isf(alpha, np.arange(1, KS_TABLE_BELOW)))
    grid = np.linspace(1 / math.sqrt(KS_FIT_MAX_N), 1 / math.sqrt(KS_TABLE_BELOW), KS_FIT_POINTS)
    ns = np.unique(np.round(1 / grid**2).astype(np.int64))
    u = 1 / np.sqrt(ns)
    poly = np.polynomial.Polynomial.fit(u, stats.kstwo.isf(alpha, ns) * np.sqrt(ns), KS_FIT_DEGREE)
    offset, scale = (float(value) for value in poly.mapparms())
    return table, offset, scale, tuple(float(c) for c in poly.coef)


def ks_critical(alpha: float, en: int) -> float:
    """The rule's own critical value of the KS statistic at ``en`` (for the tests to hold against scipy)."""
    table, offset, scale, coef = ks_fit(alpha)
    if en < KS_TABLE_BELOW:
        return table[max(en, 1) - 1]
    u = 1 / math.sqrt(en)
    t = offset + scale * u
    value = 0.0
    for c in reversed(coef):
        value = value * t + c
    return value * u


def _ks_en(target: Target) -> str:
    """round(N1 N2 / (N1 + N2)), half to even as numpy's round, at least 1: what ks_2samp's kstwo gets."""
    n1, n2 = REFERENCE_SAMPLES + _policy(target), FEATURE_SAMPLES + _policy(target)
    x = f"({n2} * on(feature) group_left {n1} / ({n2} + on(feature) group_left {n1}))"
    whole = f"floor{x}"
    return f"clamp_min({whole} + ({x} - {whole} > bool 0.5) + ({x} - {whole} == bool 0.5) * ({whole} % 2), 1)"


def _ks_critical(target: Target, alpha: float) -> str:
    table, offset, scale, coef = ks_fit(alpha)
    en = KS_EN + _policy(target)
    u = f"(1 / sqrt({en}))"
    t = f"({offset!r} + {scale!r} * {u})"
    horner = f"{coef[-1]!r}"
    for c in reversed(coef[:-1]):
        horner = f"({horner} * {t} + {c!r})"
    fitted = f"({horner} * {u} and {en} >= {KS_TABLE_BELOW})"
    return fitted + "\nor " + _table(en, dict(enumerate(table, start=1)))


def _gaps(target: Target, numeric: Sequence[binning.NumericBins]) -> str:
    """F_ref - F_live at each interior edge, from the cumulative buckets directly."""
    parts = []
    for feature in numeric:
        name = quote(feature.name)
        total = f"{BUCKET_INCREASE}{_policy(target, f'feature={name}', INF_LE)}"
        reference = np.cumsum(feature.counts)[:-1] / feature.counts.sum()
        for index, (edge, below) in enumerate(zip(feature.interior, reference, strict=True), start=1):
            bucket = f"{BUCKET_INCREASE}{_policy(target, f'feature={name}', f'le=~{le_matcher(float(edge))}')}"
            parts.append(
                f'label_replace({float(below)!r} - {bucket} / ignoring(le) ({total} > 0), "edge", "{index}", "", "")'
            )
    return "\n  or ".join(parts)


def _unscored_zero(target: Target, feature: binning.FeatureBins) -> str:
    """0 for a feature with one bin (nothing can move), while it has live samples."""
    return f"({FEATURE_SAMPLES}{_policy(target, f'feature={quote(feature.name)}')} > 0) * 0"


def _ks_statistic(target: Target, numeric: Sequence[binning.NumericBins]) -> str:
    parts = [f"max by ({GROUP}) (abs({CDF_GAP}{_policy(target)}))"]
    parts += [_unscored_zero(target, f) for f in numeric if f.counts.size < 2]
    return "\nor ".join(parts)


def wasserstein_scale(feature: binning.NumericBins) -> float:
    """The reference's standard deviation with values uniform within each bin, at least WASSERSTEIN_MIN_SCALE."""
    p = feature.counts / feature.counts.sum()
    widths = np.diff(feature.edges)
    mids = (feature.edges[:-1] + feature.edges[1:]) / 2.0
    mean = float(np.sum(p * mids))
    variance = float(np.sum(p * (widths**2 / 12.0 + (mids - mean) ** 2)))
    return max(math.sqrt(max(variance, 0.0)), WASSERSTEIN_MIN_SCALE)


def _wasserstein(target: Target, numeric: Sequence[binning.NumericBins]) -> str:
    """Per feature, the area between the two CDFs bin by bin, over the reference's scale."""
    parts = []
    for feature in numeric:
        k = feature.counts.size
        if k < 2:
            parts.append(_unscored_zero(target, feature))
            continue
        name = quote(feature.name)

        def gap(edge: int, name: str = name) -> str:
            return f'sum without (edge, le) ({CDF_GAP}{_policy(target, f"feature={name}", f"edge={quote(str(edge))}")})'

        widths = [float(w) for w in np.diff(feature.edges)]
        terms = [f"{widths[0]!r} * abs({gap(1)}) / 2"]
        for j in range(1, k - 1):
            a, b = gap(j), gap(j + 1)
            total = f"(abs({a}) + abs({b}))"
            terms.append(f"{widths[j]!r} * ({total} / 2 - clamp_min(-({a} * {b}), 0) / clamp_min({total}, {TINY!r}))")
        terms.append(f"{widths[-1]!r} * abs({gap(k - 1)}) / 2")
        parts.append("(\n    " + "\n  + ".join(terms) + f"\n) / {wasserstein_scale(feature)!r}")
    return "\n  or ".join(parts)


def threshold_of(spec: DriftPolicySpec) -> float:
    return spec.threshold if spec.threshold is not None else DEFAULT_THRESHOLDS[spec.method]


def alerts_note(spec: DriftPolicySpec) -> str | None:
    """Why the rule has no alerts, or None when it has them."""
    if not spec.actions.alert.enabled:
        return "alerting rules are disabled (spec.actions.alert.enabled: false)"
    return None


def select_features(spec: DriftPolicySpec, reference: Mapping[str, binning.FeatureBins]) -> list[str]:
    """The watched features, in the reference's order; ValueError naming spec.features on unknown ones."""
    if spec.features is None:
        return list(reference)
    unknown = [name for name in spec.features if name not in reference]
    if unknown:
        raise ValueError(
            f"spec.features: {', '.join(repr(n) for n in unknown)} not in the serving version's referenceStats "
            f"(it has {', '.join(reference)})"
        )
    wanted = set(spec.features)
    return [name for name in reference if name in wanted]


def _method_rules(
    spec: DriftPolicySpec, target: Target, chosen: Sequence[binning.FeatureBins], labels: Mapping[str, str]
) -> tuple[list[JsonDict], str]:
    """The recording rules of spec.method (beyond PSI's) and the condition its alert fires on."""
    method, threshold = spec.method, threshold_of(spec)
    numeric = [f for f in chosen if isinstance(f, binning.NumericBins)]
    rules: list[JsonDict] = []

    def record(name: str, expr: str) -> None:
        rules.append({"record": name, "expr": expr, "labels": dict(labels)})

    if method in {"jsd", "chi2"}:
        record(BIN_REFERENCE, _aligned_reference(target))
    if method in {"chi2", "ks"}:
        record(REFERENCE_SAMPLES, "\n  or ".join(_constant(float(f.counts.sum()), feature=f.name) for f in chosen))
    if method in {"ks", "wasserstein"} and any(f.counts.size > 1 for f in numeric):
        record(CDF_GAP, _gaps(target, numeric))
    if method == "psi":
        return rules, f"{PSI}{_policy(target)} >= {float(threshold)!r}"
    if method == "jsd":
        record(BIN_MIXTURE, f"({BIN_RATIO}{_policy(target)} + {BIN_REFERENCE}{_policy(target)}) / 2")
        record(JSD, _jsd(target))
        return rules, f"{JSD}{_policy(target)} >= {float(threshold)!r}"
    if method == "wasserstein":
        record(WASSERSTEIN, _wasserstein(target, numeric))
        return rules, f"{WASSERSTEIN}{_policy(target)} >= {float(threshold)!r}"
    if method == "chi2":
        record(CHI2_CELLS, _chi2_cells(target))
        record(CHI2_DOF, f"count by ({GROUP}) ({CHI2_CELLS}{_policy(target)} > 0) - 1")
        record(CHI2_RAW, _chi2_raw(target))
        record(CHI2_YATES, _chi2_yates(target))
        record(CHI2_STATISTIC, _chi2_statistic(target))
        critical = {dof: chi2_critical(float(threshold), dof) for dof in chi2_dofs(chosen)}
        record(CHI2_CRITICAL, _table(CHI2_DOF + _policy(target), critical))
        return rules, f"{CHI2_STATISTIC}{_policy(target)} > {CHI2_CRITICAL}{_policy(target)}"
    if method == "ks":
        record(KS_STATISTIC, _ks_statistic(target, numeric))
        record(KS_EN, _ks_en(target))
        record(KS_CRITICAL, _ks_critical(target, float(threshold)))
        return rules, f"{KS_STATISTIC}{_policy(target)} > {KS_CRITICAL}{_policy(target)}"
    raise ValueError(f"spec.method: unknown method {method!r}")


# What the alert says its value is, per method.
_ALERT_VALUE: Final = {
    "psi": "PSI",
    "jsd": "The Jensen-Shannon distance",
    "wasserstein": "The Wasserstein distance (in reference standard deviations)",
    "ks": "The KS statistic",
    "chi2": "The chi-squared statistic",
}


def _description(spec: DriftPolicySpec, target: Target) -> str:
    threshold = threshold_of(spec)
    value = '{{ printf "%.3f" $value }}'
    subject = f"of feature {{{{ $labels.feature }}}} over the last {spec.window}"
    where = (f"for deployment {target.deployment}, version {{{{ $labels.version }}}} "
             f"(DriftPolicy {target.policy_id}).")  # fmt: skip
    if spec.method == "psi":
        return f"PSI {subject} is {value} (threshold {threshold:g}) {where}"
    if DRIFTED_WHEN[spec.method] == "<":
        return f"{_ALERT_VALUE[spec.method]} {subject} is {value}: p-value below {threshold:g} {where}"
    return f"{_ALERT_VALUE[spec.method]} {subject} is {value} (threshold {threshold:g}) {where}"


def rule_groups(
    spec: DriftPolicySpec, target: Target, reference: Mapping[str, binning.FeatureBins], features: Sequence[str]
) -> list[JsonDict]:
    """The PrometheusRule's ``spec.groups``."""
    window = prom_duration(spec.window)
    chosen = [reference[name] for name in features]
    numeric = [f for f in chosen if isinstance(f, binning.NumericBins)]
    categorical = [f for f in chosen if isinstance(f, binning.CategoricalBins)]
    labels = {"drift_policy": target.policy_id, "deployment": target.deployment}
    rules: list[JsonDict] = []
    if numeric:
        selector = series_selector(target, f"feature=~{_feature_regex([f.name for f in numeric])}")
        rules.append({
            "record": BUCKET_INCREASE,
            "expr": f"sum by ({GROUP}, le) (increase({FEATURE_BUCKET}{selector}[{window}]))",
            "labels": labels,
        })  # fmt: skip
    if categorical:
        selector = series_selector(target, f"feature=~{_feature_regex([f.name for f in categorical])}")
        rules.append({
            "record": CATEGORY_INCREASE,
            "expr": f"sum by ({GROUP}, category) (increase({FEATURE_CATEGORY}{selector}[{window}]))",
            "labels": labels,
        })  # fmt: skip
    if chosen:
        rules.append({"record": FEATURE_SAMPLES, "expr": _samples(target, bool(numeric), bool(categorical)),
                      "labels": labels})  # fmt: skip
        samples = f"max by (namespace, model, version) ({FEATURE_SAMPLES}{_policy(target)})"
        rules.append({"record": SAMPLES, "expr": samples, "labels": labels})
    if not chosen:
        return [{"name": f"modelops-drift.{target.namespace}.{target.policy}", "rules": rules}]
    ratios = [_numeric_ratio(target, f) if isinstance(f, binning.NumericBins) else _categorical_ratio(target, f)
              for f in chosen]  # fmt: skip
    rules.append({"record": BIN_RATIO, "expr": "\n  or ".join(ratios), "labels": labels})
    rules.append({"record": REFERENCE_RATIO, "expr": _reference(chosen), "labels": labels})
    rules.append({"record": PSI, "expr": _psi(target), "labels": labels})
    method_rules, drifted = _method_rules(spec, target, chosen, labels)
    rules += method_rules
    alert = spec.actions.alert
    if alerts_note(spec) is None:
        rules.append({
            "alert": ALERT,
            "expr": f"{drifted}\nand on(namespace, model, version) {SAMPLES}{_policy(target)} >= {spec.min_samples}",
            "for": prom_duration(alert.for_),
            "labels": {**(alert.labels or {}), **labels, "severity": alert.severity, "method": spec.method},
            "annotations": {
                "summary": "Model input drift on {{ $labels.feature }} of {{ $labels.model }} {{ $labels.version }}",
                "description": _description(spec, target),
            },
        })  # fmt: skip
    return [{"name": f"modelops-drift.{target.namespace}.{target.policy}", "rules": rules}]


def rule_name(policy: str) -> str:
    return f"{policy[:240]}-drift"


def prometheus_rule(
    spec: DriftPolicySpec,
    target: Target,
    reference: Mapping[str, binning.FeatureBins],
    features: Sequence[str],
    extra_labels: Mapping[str, str],
    extra_rules: Sequence[JsonDict] = (),
) -> JsonDict:
    """The whole PrometheusRule object, owned by the DriftPolicy (deleted with it); ``extra_rules`` (the
    quality alerts of ``logic.qualityloop``) join its group."""
    metadata: JsonDict = {
        "name": rule_name(target.policy),
        "namespace": target.namespace,
        "labels": {
            **extra_labels,
            "app.kubernetes.io/managed-by": "modelops-operator",
            POLICY_LABEL: target.policy,
        },
        "annotations": {"modelops.io/model-version": target.version},
    }
    groups = rule_groups(spec, target, reference, features)
    groups[0]["rules"] = [*groups[0]["rules"], *extra_rules]
    if target.uid:
        metadata["ownerReferences"] = [owner_reference("DriftPolicy", target.policy, target.uid)]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": groups},
    }
