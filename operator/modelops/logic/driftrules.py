"""The PrometheusRule of a DriftPolicy: recording rules that score drift from live histograms, and alerts.

The model server exports, per served version, a histogram ``modelops_feature`` per numeric
feature whose ``le`` buckets are the feature's interior reference edges, and counters
``modelops_feature_category_total`` per category of a categorical feature (unseen ones count
as ``__other__``). Only these counts leave the pod. Over the policy's window:

``modelops_drift:feature_bucket:increase`` / ``modelops_drift:feature_category:increase``
    the increase of every bucket/category, summed over the serving pods;
``modelops_drift:samples``
    live inputs (rows) in the window: the largest per-feature total;
``modelops_drift:feature_bin:ratio{bin}``
    the live proportion per reference bin: bin ``i`` of a numeric feature is the difference of
    the adjacent cumulative buckets ``le=edges[i+1]`` and ``le=edges[i]`` (bin 0 is
    ``le=edges[1]`` itself, the last bin ``+Inf`` minus ``le=edges[-2]``), divided by ``+Inf``;
    a categorical feature's bins are its categories;
``modelops_drift:feature_reference:ratio{bin}``
    the reference proportions from referenceStats, written into the rule as constants;
``modelops_drift:feature_psi``
    PSI = sum over bins of (q - p) * ln(q / p), both proportions floored at
    ``PSI_EPSILON`` (1e-4, the drift library's own floor) so that an empty bin on either side
    gives a large but finite term instead of an infinite one -- the same number
    ``modelops.drift.compare_binned(method="psi")`` computes from the same counts.

Every recorded series carries ``drift_policy="<namespace>/<name>"`` and ``deployment``. The
alert ``ModelInputDrift`` fires per feature when the PSI is at or above the threshold while
the window holds at least ``minSamples`` inputs; it is labelled with model, version,
deployment, feature, severity and the policy's extra labels.

Only PSI is computed in PromQL. For jsd, ks, wasserstein and chi2 (p-values and sorted-CDF
statistics do not fit PromQL well) the rule still records the counts, proportions and the
PSI, but has no alerts: the operator evaluates those methods itself from the same bucket
counts with the drift library, and says so in the RuleSynced condition.

Series are selected with ``namespace=~"<ns>|"``: in a cluster the ServiceMonitor adds the
pods' namespace; a Prometheus without that label (a test's) matches too.
"""

from __future__ import annotations

import decimal
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from modelops.api.driftpolicy import DriftPolicySpec
from modelops.drift import bins as binning
from modelops.drift.methods import DEFAULT_THRESHOLDS, PSI_EPSILON
from modelops.logic.analysis import parse_duration

JsonDict = dict[str, Any]

FEATURE_BUCKET: Final = "modelops_feature_bucket"
FEATURE_CATEGORY: Final = "modelops_feature_category_total"
BUCKET_INCREASE: Final = "modelops_drift:feature_bucket:increase"
CATEGORY_INCREASE: Final = "modelops_drift:feature_category:increase"
SAMPLES: Final = "modelops_drift:samples"
BIN_RATIO: Final = "modelops_drift:feature_bin:ratio"
REFERENCE_RATIO: Final = "modelops_drift:feature_reference:ratio"
PSI: Final = "modelops_drift:feature_psi"
ALERT: Final = "ModelInputDrift"
POLICY_LABEL: Final = "modelops.io/drift-policy"
INF_LE: Final = 'le="+Inf"'
METHODS_IN_RULES: Final = frozenset({"psi"})


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
    parts = [f"namespace=~{quote(re.escape(target.namespace) + '|')}", f"model={quote(target.model)}",
             f"version={quote(target.version)}", *extra]  # fmt: skip
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
    """The reference's proportions per bin, floored at PSI_EPSILON as the drift library floors them."""
    total = float(feature.counts.sum())
    if total <= 0:
        return [PSI_EPSILON for _ in range(feature.counts.size)]
    return [max(float(count) / total, PSI_EPSILON) for count in feature.counts]


def _reference(features: Sequence[binning.FeatureBins]) -> str:
    parts = []
    for feature in features:
        for name, proportion in zip(bin_names(feature), reference_proportions(feature), strict=True):
            inner = f'label_replace(vector({proportion!r}), "feature", {quote(_replacement(feature.name))}, "", "")'
            parts.append(f'label_replace({inner}, "bin", {quote(_replacement(name))}, "", "")')
    return "\n  or ".join(parts)


def _psi(target: Target) -> str:
    live = f"clamp_min({BIN_RATIO}{_policy(target)}, {PSI_EPSILON!r})"
    reference = REFERENCE_RATIO + _policy(target)
    return (
        "sum by (namespace, model, version, feature) (\n"
        f"  ({live} - on(feature, bin) group_left {reference})\n"
        f"  * ln({live} / on(feature, bin) group_left {reference})\n)"
    )


def threshold_of(spec: DriftPolicySpec) -> float:
    return spec.threshold if spec.threshold is not None else DEFAULT_THRESHOLDS[spec.method]


def alerts_note(spec: DriftPolicySpec) -> str | None:
    """Why the rule has no alerts, or None when it has them."""
    if not spec.actions.alert.enabled:
        return "alerting rules are disabled (spec.actions.alert.enabled: false)"
    if spec.method not in METHODS_IN_RULES:
        return (
            f"spec.method {spec.method}: PromQL alerting rules exist for psi only; the operator evaluates "
            f"{spec.method} itself (DriftDetected), the rule records the counts and PSI for dashboards"
        )
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
            "expr": f"sum by (namespace, model, version, feature, le) (increase({FEATURE_BUCKET}{selector}[{window}]))",
            "labels": labels,
        })  # fmt: skip
    if categorical:
        selector = series_selector(target, f"feature=~{_feature_regex([f.name for f in categorical])}")
        rules.append({
            "record": CATEGORY_INCREASE,
            "expr": (f"sum by (namespace, model, version, feature, category) "
                     f"(increase({FEATURE_CATEGORY}{selector}[{window}]))"),
            "labels": labels,
        })  # fmt: skip
    totals = []
    if numeric:
        totals.append(f"sum without (le) ({BUCKET_INCREASE}{_policy(target, INF_LE)})")
    if categorical:
        totals.append(f"sum without (category) ({CATEGORY_INCREASE}{_policy(target)})")
    if totals:
        rules.append({
            "record": SAMPLES,
            "expr": f"max by (namespace, model, version) ({' or '.join(totals)})",
            "labels": labels,
        })  # fmt: skip
    for feature in chosen:
        expr = _numeric_ratio(target, feature) if isinstance(feature, binning.NumericBins) else (
            _categorical_ratio(target, feature))  # fmt: skip
        rules.append({"record": BIN_RATIO, "expr": expr, "labels": labels})
    if chosen:
        rules.append({"record": REFERENCE_RATIO, "expr": _reference(chosen), "labels": labels})
        rules.append({"record": PSI, "expr": _psi(target), "labels": labels})
    alert = spec.actions.alert
    if chosen and alerts_note(spec) is None:
        threshold = threshold_of(spec)
        rules.append({
            "alert": ALERT,
            "expr": (f"{PSI}{_policy(target)} >= {float(threshold)!r}\n"
                     f"and on(namespace, model, version) {SAMPLES}{_policy(target)} >= {spec.min_samples}"),
            "for": prom_duration(alert.for_),
            "labels": {**(alert.labels or {}), **labels, "severity": alert.severity, "method": "psi"},
            "annotations": {
                "summary": "Model input drift on {{ $labels.feature }} of {{ $labels.model }} {{ $labels.version }}",
                "description": (
                    f"PSI of feature {{{{ $labels.feature }}}} over the last {spec.window} is "
                    '{{ printf "%.3f" $value }} '
                    f"(threshold {threshold:g}) for deployment {target.deployment}, version "
                    f"{{{{ $labels.version }}}} (DriftPolicy {target.policy_id})."
                ),
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
) -> JsonDict:
    """The whole PrometheusRule object, owned by the DriftPolicy (deleted with it)."""
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
    if target.uid:
        metadata["ownerReferences"] = [{
            "apiVersion": "modelops.io/v1alpha1", "kind": "DriftPolicy", "name": target.policy,
            "uid": target.uid, "controller": True, "blockOwnerDeletion": True,
        }]  # fmt: skip
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": metadata,
        "spec": {"groups": rule_groups(spec, target, reference, features)},
    }
