"""Drift statistics: how far a current sample of a model's inputs is from its reference.

A small numpy/scipy library (no pandas needed) behind ``modelops drift`` and the
operator's DriftPolicy evaluations. Methods and what "drifted" means for each:

============  =====================  ==========  =================================
method        applies to             default     drifted when
============  =====================  ==========  =================================
psi           numeric, categorical   0.2         PSI >= threshold
ks            numeric                0.05        KS p-value < threshold
jsd           numeric, categorical   0.1         JS distance (base 2) >= threshold
wasserstein   numeric                0.1         W1 / std(reference) >= threshold
chi2          numeric, categorical   0.05        chi-squared p-value < threshold
============  =====================  ==========  =================================

Numeric features are binned for psi, jsd and chi2 (quantile bins of the reference, the
contract's ``le`` convention); ks and wasserstein on a categorical feature raise
``ValueError``. Entry points: ``compare`` / ``compare_methods`` (raw vs raw),
``compare_binned`` (referenceStats vs per-bin counts), ``compare_to_reference``
(referenceStats vs raw current samples), ``bin_counts`` and ``reference_stats``.
"""

from __future__ import annotations

from modelops.drift.bins import (
    DEFAULT_BINS,
    DEFAULT_MAX_CATEGORIES,
    OTHER,
    bin_counts,
    parse_reference_stats,
    reference_stats,
)
from modelops.drift.comparison import (
    DEFAULT_MIN_SAMPLES,
    DriftReport,
    FeatureDrift,
    compare,
    compare_binned,
    compare_methods,
    compare_to_reference,
)
from modelops.drift.methods import (
    DEFAULT_THRESHOLDS,
    DRIFTED_WHEN,
    METHOD_DESCRIPTIONS,
    METHOD_KINDS,
    METHODS,
    PSI_EPSILON,
    is_drifted,
)

__all__ = [
    "DEFAULT_BINS",
    "DEFAULT_MAX_CATEGORIES",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_THRESHOLDS",
    "DRIFTED_WHEN",
    "METHODS",
    "METHOD_DESCRIPTIONS",
    "METHOD_KINDS",
    "OTHER",
    "PSI_EPSILON",
    "DriftReport",
    "FeatureDrift",
    "bin_counts",
    "compare",
    "compare_binned",
    "compare_methods",
    "compare_to_reference",
    "is_drifted",
    "parse_reference_stats",
    "reference_stats",
]
