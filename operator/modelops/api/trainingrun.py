"""The TrainingRun kind: one training (or a sweep of trials) that becomes a ModelVersion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from modelops.api.common import (
    DNS_SUBDOMAIN,
    FREE_FORM,
    SHA256,
    ApiModel,
    Condition,
    ModelName,
    PodOptions,
    StatusModel,
    conditions_field,
    kopf_field,
    observed_generation_field,
    with_rules,
)
from modelops.train.estimators import ALLOWED_ESTIMATORS  # plain data: no scikit-learn is imported

# A PersistentVolumeClaim name (a DNS-1123 subdomain) and a path whose segments never climb: a
# segment is anything but "." or ".." (RE2, which the API server uses, has no lookahead).
CLAIM = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
SEGMENT = r"([^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)"
CLAIM_PATH = rf"pvc://{CLAIM}/{SEGMENT}(/{SEGMENT})*"
DATASET_URI = rf"^(sklearn://[a-z0-9_]+|file:///.+|/.+|{CLAIM_PATH}|s3://[^/]+/.+|https?://.+)$"
STORE_URI = rf"^(pvc://{CLAIM}(/{SEGMENT})*/?|s3://[^/]+(/.*)?)$"
ESTIMATOR_CLASS = r"^sklearn(\.[a-z_][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$"
#: AWS's region names (us-east-1, eu-central-2, us-gov-west-1): the same rule as modelops.train.locations.
AWS_REGION = r"^[a-z]{2}(-[a-z]+)+-[1-9][0-9]?$"
#: An http(s) origin and path: no user info, query or fragment (signed requests go there).
ENDPOINT = r"^https?://[^/?#@\s]+(/[^?#\s]*)?$"

Task = Literal["classification", "regression"]
TrainingPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


class S3Options(ApiModel):
    """How to reach an S3-compatible store."""

    endpoint_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=ENDPOINT,
        description=(
            "Endpoint of the S3-compatible service; empty for AWS S3 itself. It receives signed requests, so it "
            "must use https (plain http only to a loopback address), or be on the operator's allow-list of "
            "endpoints (chart value s3.allowedEndpoints), which then is the only rule."
        ),
    )
    region: str | None = Field(
        default=None, max_length=32, pattern=AWS_REGION, description="AWS region name, e.g. us-east-1."
    )
    secret_ref: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Name of a Secret in the run's namespace with the keys AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, given to the training pod as environment variables."
        ),
    )


class DatasetSpec(ApiModel):
    """The data a model is trained and evaluated on."""

    uri: str = Field(
        min_length=1,
        max_length=2048,
        pattern=DATASET_URI,
        description=(
            "Where the data is: sklearn://<name> for the datasets bundled with scikit-learn (iris, wine, "
            "breast_cancer, digits, diabetes), pvc://<claim>/<path> (mounted read-only by the Job; no '..'), "
            "s3://<bucket>/<key> (S3-compatible, see s3), https://, or file:///path (also a plain /path) inside "
            "the trainer's file roots, which the operator sets to the mounted claims."
        ),
    )
    format: Literal["auto", "csv", "parquet"] = Field(
        default="auto", description="File format; auto picks it from the file name's extension."
    )
    target: str = Field(min_length=1, description="The column to predict.")
    features: list[str] | None = Field(
        default=None, min_length=1, description="Columns to train on; default: every column but the target."
    )
    categorical_features: list[str] | None = Field(
        default=None,
        description="Columns to treat as categorical; default: text, category and boolean columns.",
    )
    test_size: float = Field(default=0.2, gt=0, lt=1, description="Share of rows held out to compute the metrics.")
    seed: int = Field(default=42, ge=0, description="Seed of the train/test split and of the estimator.")
    s3: S3Options | None = Field(default=None, description="Endpoint and credentials for s3:// URIs.")


NumericImpute = Literal["auto", "none", "mean", "median", "most_frequent", "constant"]
CategoricalImpute = Literal["none", "most_frequent", "constant"]
ColumnImpute = Literal["none", "mean", "median", "most_frequent", "constant"]


class Imputation(ApiModel):
    """How missing values are filled before the estimator sees them."""

    numeric: NumericImpute = Field(
        default="auto",
        description=(
            "Strategy for numeric columns. auto: the median, for columns with missing values, when the estimator "
            "cannot take NaN itself (HistGradientBoosting, RandomForest and DecisionTree can); none: leave gaps."
        ),
    )
    categorical: CategoricalImpute = Field(
        default="none", description="Strategy for categorical columns; none: a missing value is a category."
    )
    fill_value: float = Field(default=0, description="The number the constant strategy fills numeric gaps with.")
    fill_category: str = Field(
        default="missing", min_length=1, description="The category the constant strategy fills categorical gaps with."
    )
    columns: dict[str, ColumnImpute] | None = Field(
        default=None, description="Strategy per column, overriding numeric/categorical (mean/median: numeric only)."
    )
    indicators: bool = Field(
        default=False, description="Add a 0/1 'was missing' column for every imputed column with gaps."
    )


class Preprocessing(ApiModel):
    """Column transforms placed before the estimator in one Pipeline (docs/contracts.md, Messy tables)."""

    scale_numeric: bool = Field(default=False, description="Standardise numeric columns (StandardScaler).")
    one_hot_categorical: bool = Field(
        default=True, description="One-hot encode categorical columns; unseen categories are ignored."
    )
    max_categories: int | None = Field(
        default=None,
        ge=2,
        le=1000,
        description=(
            "One-hot columns per categorical feature at most (default 50): past it the most frequent values "
            "keep a column each and the long tail (and unseen values) share one."
        ),
    )
    impute: Imputation | None = Field(default=None, description="Filling missing values; default: numeric auto.")


class CalibrationSpec(ApiModel):
    """Calibrate a classifier's probabilities: scikit-learn's CalibratedClassifierCV around the final estimator."""

    method: Literal["sigmoid", "isotonic"] = Field(
        description=(
            "sigmoid (Platt scaling, for small data) or isotonic (more flexible, needs more rows). The model "
            "server's estimate of accuracy before labels arrive is only as good as the calibration."
        )
    )
    cv: int = Field(default=5, ge=2, le=20, description="Folds of the training split the calibration is fitted on.")


class EstimatorSpec(ApiModel):
    """A scikit-learn estimator from the operator's allow-list."""

    class_name: str = Field(
        max_length=200,
        pattern=ESTIMATOR_CLASS,
        description=(
            "Class path of an allowed scikit-learn estimator; arbitrary imports are refused. Allowed: "
            + "; ".join(
                f"{task}: {', '.join(path for path, kind in ALLOWED_ESTIMATORS.items() if kind == task)}"
                for task in ("classification", "regression")
            )
            + "."
        ),
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor parameters, checked against the estimator's own parameters.",
        json_schema_extra=FREE_FORM,
    )
    preprocessing: Preprocessing | None = Field(default=None, description="Scaling and encoding of columns.")
    calibration: CalibrationSpec | None = Field(
        default=None,
        description=(
            "Calibrate a classifier's probabilities (docs/quality.md). Either way a classifier's expected "
            "calibration error on the held-out split is recorded as metrics.ece."
        ),
    )


class SweepSpec(ApiModel):
    """A hyper-parameter search: one Indexed Job, one index per trial."""

    strategy: Literal["grid", "random"] = Field(default="grid", description="Grid search or random search.")
    parameters: dict[str, Any] = Field(
        min_length=1,
        description=(
            "Parameter name → list of values (grid, or a uniform choice for random), or for random search "
            "{low, high, log, type: float|int}."
        ),
        json_schema_extra=FREE_FORM,
    )
    trials: int | None = Field(
        default=None, ge=1, le=1000, description="How many random draws; required for strategy random."
    )
    seed: int = Field(default=0, ge=0, description="Seed of the random draws.")
    parallelism: int = Field(default=2, ge=1, le=100, description="At most this many trials run at once.")
    metric: str = Field(min_length=1, description="The metric that picks the best trial, e.g. f1 or rmse.")
    goal: Literal["maximize", "minimize"] = Field(default="maximize", description="Whether higher is better.")

    model_config = with_rules(
        {
            "rule": "self.strategy != 'random' || has(self.trials)",
            "message": "spec.sweep.trials is required when spec.sweep.strategy is random",
        }
    )

    @model_validator(mode="after")
    def _random_needs_trials(self) -> SweepSpec:
        if self.strategy == "random" and self.trials is None:
            raise ValueError("trials is required when strategy is random")
        return self


class ArtifactStoreSpec(ApiModel):
    """Where the trained artifact is written."""

    uri: str = Field(
        max_length=2048,
        pattern=STORE_URI,
        description="pvc://<claim>/<prefix> (no '..') or s3://<bucket>/<prefix>; the run's files go below it.",
    )
    s3: S3Options | None = Field(default=None, description="Endpoint and credentials for s3://.")


class ModelCard(ApiModel):
    """What a reader of the registry should know about a model."""

    description: str | None = Field(default=None, max_length=4096, description="What the model does.")
    intended_use: str | None = Field(default=None, max_length=4096, description="What it is meant for.")
    limitations: str | None = Field(default=None, max_length=4096, description="Known limitations and risks.")
    owners: list[str] | None = Field(default=None, description="Who answers for the model.")


#: At most this many sensitive features (and intersections) per run: each is a table on the version.
MAX_SENSITIVE_FEATURES = 10
#: Interior cut points of a numeric sensitive feature at most (so at most 21 groups).
MAX_BINS = 20
#: The ceiling of evaluation.maxGroups: every group is a row of the version's fairness record.
MAX_GROUPS = 200


def intersection_name(pair: Sequence[str]) -> str:
    """How an intersection is named in the fairness record and in gates: ``sex&race``."""
    return "&".join(pair)


class SensitiveFeature(ApiModel):
    """A column the held-out predictions are evaluated by, group by group (docs/fairness.md)."""

    name: str = Field(
        min_length=1,
        max_length=256,
        description=(
            "The column. Its values are the groups (missing values are a group of their own), unless bins are "
            "given. The trainer refuses a column the dataset does not have, before fitting."
        ),
    )
    bins: list[Annotated[float, Field(allow_inf_nan=False)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BINS,
        description=(
            "For a numeric column: interior cut points, strictly increasing; [30, 50] makes the groups <30, "
            "[30, 50) and >=50. Without bins every distinct value is a group."
        ),
    )
    labels: list[str] | None = Field(
        default=None,
        description="Names of the binned groups, one more than bins (default: <30, [30, 50), >=50).",
    )
    use_as_input: bool = Field(
        default=True,
        description=(
            "false: keep the column out of the model's inputs (and its signature) while still evaluating by it. "
            "true leaves the inputs as dataset.features says."
        ),
    )

    model_config = with_rules(
        {
            "rule": "!has(self.labels) || (has(self.bins) && size(self.labels) == size(self.bins) + 1)",
            "message": "labels needs bins, and one label more than bins (a name for every group)",
            "fieldPath": ".labels",
        },
    )

    @model_validator(mode="after")
    def _bins_and_labels(self) -> SensitiveFeature:
        # The same rule as the CEL, plus what CEL cannot say cheaply: cut points strictly increasing.
        if self.labels is not None and (self.bins is None or len(self.labels) != len(self.bins) + 1):
            raise ValueError("labels: needs bins, and one label more than bins (a name for every group)")
        if self.bins is not None and any(b <= a for a, b in zip(self.bins, self.bins[1:], strict=False)):
            raise ValueError(f"bins: must be strictly increasing, got {self.bins}")
        if self.labels is not None and len(set(self.labels)) != len(self.labels):
            raise ValueError("labels: must be distinct")
        return self


class FeatureImportanceSpec(ApiModel):
    """Permutation importance of each source column on the held-out split, and what bounds its cost."""

    enabled: bool = Field(default=True, description="false: record no feature importance (it costs predictions).")
    max_rows: int = Field(
        default=1000, ge=10, le=100_000, description="Held-out rows it uses at most (a seeded sample beyond that)."
    )
    repeats: int = Field(default=5, ge=2, le=50, description="Permutations per column (the spread comes from them).")
    max_permutations: int = Field(
        default=500,
        ge=10,
        le=100_000,
        description=(
            "Columns times repeats at most: a wide table gets fewer repeats (never fewer than 2), so its cost stays "
            "about maxPermutations predictions of maxRows rows."
        ),
    )


class EvaluationSpec(ApiModel):
    """What the trainer measures on the held-out split beyond the metrics: fairness and feature importance."""

    sensitive_features: list[SensitiveFeature] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SENSITIVE_FEATURES,
        description="Columns to measure fairness by (fairlearn): per-group metrics and gaps, recorded on the version.",
    )
    intersections: list[Annotated[list[str], Field(min_length=2, max_length=2)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_SENSITIVE_FEATURES,
        description=(
            "Pairs of sensitive feature names to evaluate together too, e.g. [[sex, race]]: its groups are the "
            "pairs of values (F&White, ...) and its name in gates is sex&race."
        ),
    )
    min_group_size: int = Field(
        default=30,
        ge=1,
        le=1_000_000,
        description=(
            "A group with fewer held-out rows is reported as insufficient (never dropped); a gate on it fails as "
            "insufficient evidence unless the policy allows it."
        ),
    )
    max_groups: int = Field(
        default=50,
        ge=2,
        le=MAX_GROUPS,
        description="A sensitive feature (or intersection) with more groups is refused before fitting.",
    )
    positive_class: str | None = Field(
        default=None,
        min_length=1,
        description=(
            "The class whose prediction is the 'selection' (as text, e.g. '1' or 'approved'). Default: the "
            "greater of two sorted classes; with more classes and none named, selection rates are per class "
            "and each gap is the worst over the classes."
        ),
    )
    feature_importance: FeatureImportanceSpec | None = Field(
        default=None, description="Permutation importance (on by default); enabled: false turns it off."
    )

    model_config = with_rules(
        {
            "rule": (
                "!has(self.sensitiveFeatures) || "
                "self.sensitiveFeatures.all(f, self.sensitiveFeatures.exists_one(g, g.name == f.name))"
            ),
            "message": "spec.evaluation.sensitiveFeatures: each column may be listed once",
            "fieldPath": ".sensitiveFeatures",
        },
        {
            "rule": (
                "!has(self.intersections) || (has(self.sensitiveFeatures) && self.intersections.all(p, "
                "p[0] != p[1] && p.all(n, self.sensitiveFeatures.exists(f, f.name == n))))"
            ),
            "message": "spec.evaluation.intersections: each pair names two different sensitiveFeatures",
            "fieldPath": ".intersections",
        },
        {
            "rule": (
                "!has(self.sensitiveFeatures) || "
                "self.sensitiveFeatures.all(f, !has(f.bins) || size(f.bins) + 1 <= self.maxGroups)"
            ),
            "message": "spec.evaluation.sensitiveFeatures: bins make more groups than spec.evaluation.maxGroups",
            "fieldPath": ".sensitiveFeatures",
        },
    )

    @model_validator(mode="after")
    def _names(self) -> EvaluationSpec:
        # The CEL rules again, for API servers (and emulators) that do not run CEL, naming the entry.
        names = [f.name for f in self.sensitive_features or ()]
        for index, feature in enumerate(self.sensitive_features or ()):
            if feature.name in names[:index]:
                raise ValueError(f"sensitiveFeatures[{index}].name: {feature.name!r} is listed twice")
            if feature.bins is not None and len(feature.bins) + 1 > self.max_groups:
                raise ValueError(
                    f"sensitiveFeatures[{index}].bins: {len(feature.bins)} cut points make {len(feature.bins) + 1} "
                    f"groups, more than maxGroups ({self.max_groups})"
                )
        for index, pair in enumerate(self.intersections or ()):
            if pair[0] == pair[1]:
                raise ValueError(f"intersections[{index}]: {pair[0]!r} twice; a pair names two different features")
            for name in pair:
                if name not in names:
                    raise ValueError(f"intersections[{index}]: {name!r} is not one of sensitiveFeatures")
            if intersection_name(pair) in names:
                raise ValueError(f"intersections[{index}]: its name {intersection_name(pair)!r} is a feature's too")
        return self


class TrainingRunSpec(ApiModel):
    """The desired training: data, estimator (or own image), optional sweep, Job knobs."""

    model: ModelName
    dataset: DatasetSpec = Field(description="The training data.")
    task: Task | None = Field(default=None, description="classification or regression; default from the estimator.")
    estimator: EstimatorSpec | None = Field(default=None, description="A scikit-learn estimator to fit.")
    image: str | None = Field(
        default=None,
        min_length=1,
        description="Own training image instead of estimator; it must follow the trainer's output contract.",
    )
    command: list[str] | None = Field(default=None, description="Entrypoint of the own image.")
    args: list[str] | None = Field(default=None, description="Arguments of the own image's entrypoint.")
    sweep: SweepSpec | None = Field(default=None, description="A hyper-parameter search over the estimator.")
    artifact_store: ArtifactStoreSpec | None = Field(
        default=None, description="Where the artifact goes; default: the operator's configured store."
    )
    pod: PodOptions | None = Field(default=None, description="Resources, scheduling and env of the training pods.")
    backoff_limit: int = Field(default=1, ge=0, le=100, description="Retries of a failed pod before the run fails.")
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="The run fails when it takes longer than this."
    )
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete the finished Job (not the run) after this many seconds."
    )
    source_revision: str | None = Field(
        default=None, max_length=256, description="Revision of the training code or config, e.g. a Git commit."
    )
    model_card: ModelCard | None = Field(default=None, description="Copied to the registered ModelVersion.")
    evaluation: EvaluationSpec | None = Field(
        default=None,
        description=(
            "Fairness by sensitive features and feature importance, measured on the held-out split and recorded "
            "on the version (docs/fairness.md)."
        ),
    )

    model_config = with_rules(
        {
            "rule": "has(self.estimator) != has(self.image)",
            "message": "exactly one of spec.estimator and spec.image must be set",
        },
        {
            "rule": "!has(self.sweep) || has(self.estimator)",
            "message": "spec.sweep needs spec.estimator: a sweep varies the estimator's params",
        },
    )

    @model_validator(mode="after")
    def _one_way_to_train(self) -> TrainingRunSpec:
        # The same rules as the CRD's CEL, for API servers (and emulators) that do not run CEL.
        if (self.estimator is None) == (self.image is None):
            raise ValueError("exactly one of spec.estimator and spec.image must be set")
        if self.sweep is not None and self.estimator is None:
            raise ValueError("spec.sweep needs spec.estimator: a sweep varies the estimator's params")
        return self


class ArtifactRef(StatusModel):
    """A stored artifact."""

    uri: str = Field(description="Where the artifact is.")
    sha256: str = Field(pattern=SHA256, description="SHA-256 of the artifact's bytes.")
    size_bytes: int | None = Field(default=None, ge=0, description="Size of the artifact.")


class TrialStatus(StatusModel):
    """One trial of a sweep (or the single trial of a plain run)."""

    index: int = Field(ge=0, description="The trial's Job completion index.")
    params: dict[str, Any] = Field(
        default_factory=dict, description="The parameters this trial used.", json_schema_extra=FREE_FORM
    )
    phase: TrainingPhase = Field(default="Pending", description="Pending, Running, Succeeded or Failed.")
    metrics: dict[str, float] | None = Field(default=None, description="Metrics on the held-out split.")
    fairness: dict[str, dict[str, float]] | None = Field(
        default=None,
        description="Per sensitive feature, its gaps on the held-out split (the whole record is on the version).",
    )
    artifact: ArtifactRef | None = Field(default=None, description="The trial's artifact.")
    message: str | None = Field(default=None, description="Why the trial failed, if it did.")
    start_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the trial's pod started."
    )
    completion_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the trial's pod finished."
    )


class TrainingRunStatus(StatusModel):
    """What the operator observed of the run."""

    observed_generation: int = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    phase: TrainingPhase | None = Field(default=None, description="Pending, Running, Succeeded or Failed.")
    message: str | None = Field(default=None, description="A one-line summary of the state.")
    job_name: str | None = Field(default=None, description="The Job that runs the training.")
    progress: str | None = Field(
        default=None,
        description="Finished trials out of all, e.g. 3/8; the message says which trial runs and the time elapsed.",
    )
    start_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the Job started."
    )
    completion_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}, description="When the run finished."
    )
    trials: list[TrialStatus] | None = Field(default=None, description="Every trial with params and metrics.")
    best_trial: int | None = Field(default=None, ge=0, description="Index of the best trial.")
    metrics: dict[str, float] | None = Field(default=None, description="Metrics of the registered result.")
    artifact: ArtifactRef | None = Field(default=None, description="The registered artifact.")
    model_version: str | None = Field(default=None, description="The ModelVersion registered from this run.")
    kopf: dict[str, Any] | None = kopf_field()
