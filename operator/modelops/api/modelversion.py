"""The ModelVersion kind: a governed registry entry for one trained artifact."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from modelops.api.common import (
    FREE_FORM,
    SHA256,
    ApiModel,
    Condition,
    ModelName,
    StatusModel,
    conditions_field,
    kopf_field,
    observed_generation_field,
    with_rules,
)
from modelops.api.trainingrun import EvaluationSpec, ModelCard, Preprocessing, Task

Stage = Literal["None", "Staging", "Production", "Archived"]
#: Above this expected calibration error (``spec.metrics.ece``) a version's probabilities, and the model
#: server's estimate of its quality before labels arrive, are not to be trusted (docs/quality.md).
MAX_TRUSTED_ECE = 0.05
# The CEL rule's message, and the admission webhook's (logic/governance.py) word for word.
TRAINED_BY_IMMUTABLE = "spec.trainedBy is recorded when the version is registered and cannot be set or changed later"
Datatype = Literal["FP64", "FP32", "INT64", "INT32", "BOOL", "BYTES"]
Comparison = Literal[">=", ">", "<=", "<"]
ArtifactFormat = Literal["skops", "joblib"]


class Artifact(ApiModel):
    """The trained model file, pinned by its digest."""

    uri: str = Field(
        min_length=1,
        max_length=2048,
        pattern=r"^(file:///|pvc://|s3://|https?://).+",
        description="Where the artifact is: pvc://<claim>/<path>, s3://<bucket>/<key>, https:// or file:///.",
    )
    sha256: str = Field(pattern=SHA256, description="SHA-256 of the artifact; the server refuses a mismatch.")
    format: ArtifactFormat = Field(
        default="skops",
        description=(
            "Serialisation of the artifact: skops (loads only the types the model server trusts; the default "
            "and what the trainer writes) or joblib (a pickle, which runs code when loaded: served only where "
            "the governance policy's allowPickle permits)."
        ),
    )
    size_bytes: int | None = Field(default=None, ge=0, description="Size of the artifact in bytes.")


class Framework(ApiModel):
    """The library that trained the model."""

    name: Literal["scikit-learn"] = Field(default="scikit-learn", description="The framework.")
    version: str | None = Field(default=None, description="Its version, e.g. 1.5.2.")


class TensorSpec(ApiModel):
    """One named input or output of the model (Open Inference Protocol datatypes)."""

    name: str = Field(min_length=1, description="Name of the feature or output.")
    datatype: Datatype = Field(description="FP64, FP32, INT64, INT32, BOOL or BYTES (text).")
    categorical: bool | None = Field(
        default=None,
        description=(
            "Input: the model encodes it as categories, not as a number (an INT64 column can be categorical). "
            "Absent: categorical when the datatype is BYTES or its referenceStats are categorical."
        ),
    )
    categories: list[Any] | None = Field(
        default=None,
        description=(
            "Categorical input: the values seen in training, in the type the model saw them (numbers stay "
            "numbers; null when values were missing). The server converts each request value to this type."
        ),
        json_schema_extra={"items": {**FREE_FORM, "nullable": True}},
    )
    accepts_missing: bool | None = Field(
        default=None,
        description=(
            "Input: whether the model takes a missing value (JSON null) here; when false the server answers "
            "400. Absent: the server asks the loaded model."
        ),
    )


class Signature(ApiModel):
    """What the model takes and returns."""

    inputs: list[TensorSpec] = Field(min_length=1, description="Input features, in the model's column order.")
    outputs: list[TensorSpec] | None = Field(default=None, description="Outputs, e.g. predict.")
    classes: list[Any] | None = Field(
        default=None,
        description="Class labels of a classifier, in predict_proba's column order.",
        json_schema_extra={"items": FREE_FORM},
    )


class ObjectRef(ApiModel):
    """A reference to a Kubernetes object that the version came from."""

    name: str = Field(description="Name of the object.")
    namespace: str | None = Field(default=None, description="Its namespace.")
    uid: str | None = Field(default=None, description="Its UID at the time.")


class DatasetLineage(ApiModel):
    """The exact data a version was trained on."""

    uri: str = Field(description="Where the data was read from.")
    sha256: str | None = Field(default=None, pattern=SHA256, description="SHA-256 of the data read.")
    rows: int | None = Field(default=None, ge=0, description="Rows in the dataset.")
    format: str | None = Field(default=None, description="The format it was read as: auto, csv or parquet.")
    target: str | None = Field(default=None, description="The column the model predicts.")
    features: list[str] | None = Field(default=None, description="The feature columns, when chosen explicitly.")
    categorical_features: list[str] | None = Field(
        default=None, description="Columns treated as categorical, when chosen explicitly."
    )
    test_size: float | None = Field(default=None, description="Share of rows held out for the metrics.")
    seed: int | None = Field(default=None, description="Seed of the split and of the estimator.")


class ColumnPreprocessing(ApiModel):
    """What training did to one input column (the trainer's result.json, preprocessing.columns)."""

    name: str = Field(min_length=1, description="The column.")
    kind: Literal["numeric", "categorical"] = Field(description="numeric or categorical.")
    missing: int | None = Field(default=None, ge=0, description="Missing values in the training split.")
    distinct: int | None = Field(default=None, ge=0, description="Distinct values in the training split.")
    impute: Literal["none", "mean", "median", "most_frequent", "constant"] | None = Field(
        default=None, description="How its missing values are filled (none: left as they are)."
    )
    fill_value: str | None = Field(default=None, description="The constant filled in, as text.")
    indicator: bool | None = Field(default=None, description="Whether a 0/1 'was missing' column was added.")
    scaled: bool | None = Field(default=None, description="Whether it is standardised.")
    encoding: str | None = Field(
        default=None, description="none, one-hot, or one-hot with the long tail bucketed into one column."
    )
    categories: int | None = Field(default=None, ge=0, description="categorical: the one-hot columns kept.")


class CalibrationRecord(ApiModel):
    """How a classifier's probabilities were made, and how their calibration was measured (metrics.ece)."""

    method: Literal["none", "sigmoid", "isotonic"] = Field(
        description="none (the estimator's own), or CalibratedClassifierCV's sigmoid or isotonic."
    )
    cv: int | None = Field(default=None, ge=2, description="Folds the calibration was fitted on.")
    bins: int | None = Field(default=None, ge=1, description="Equal-width bins of the top probability of metrics.ece.")
    rows: int | None = Field(default=None, ge=0, description="Held-out rows metrics.ece was measured on.")


class Lineage(ApiModel):
    """Where a version came from: enough to reproduce it."""

    training_run: ObjectRef | None = Field(default=None, description="The TrainingRun that produced it.")
    job: ObjectRef | None = Field(default=None, description="The Job that ran the training.")
    image: str | None = Field(default=None, description="The training image.")
    dataset: DatasetLineage | None = Field(default=None, description="The training data.")
    estimator: str | None = Field(default=None, description="The estimator's class path.")
    params: dict[str, Any] | None = Field(
        default=None, description="The estimator's parameters.", json_schema_extra=FREE_FORM
    )
    preprocessing: Preprocessing | None = Field(default=None, description="Scaling and encoding of columns.")
    columns: list[ColumnPreprocessing] | None = Field(
        default=None, description="What training did to each input column: missing values, imputation, encoding."
    )
    evaluation: EvaluationSpec | None = Field(
        default=None,
        description="What was measured beyond the metrics (the run's spec.evaluation); a retrain measures it again.",
    )
    calibration: CalibrationRecord | None = Field(
        default=None, description="A classifier's probabilities: how they were calibrated and measured."
    )
    trial: int | None = Field(default=None, ge=0, description="The sweep trial that was registered.")
    sklearn_version: str | None = Field(default=None, description="scikit-learn version of the training.")
    source_revision: str | None = Field(default=None, description="Revision of the training code or config.")


class FeatureStats(ApiModel):
    """Reference distribution of one feature, the bins drift is measured in."""

    name: str = Field(min_length=1, description="The feature.")
    kind: Literal["numeric", "categorical"] = Field(description="numeric (bins) or categorical (frequencies).")
    edges: list[float] | None = Field(
        default=None,
        min_length=2,
        description="numeric: k+1 bin edges; the interior ones are the Prometheus histogram buckets.",
    )
    categories: list[str] | None = Field(
        default=None, description="categorical: the most frequent categories, then __other__."
    )
    counts: list[int] = Field(description="Training rows per bin or category.")


class ReferenceStats(ApiModel):
    """Per-feature reference statistics of the training data."""

    sample_size: int = Field(ge=0, description="Rows the statistics were computed from.")
    features: list[FeatureStats] = Field(description="One entry per input feature.")


class GroupMetrics(ApiModel):
    """One group of a sensitive feature, measured on the held-out split."""

    group: str = Field(description="The group: a value of the column, a bin, or a pair of values (F&White).")
    count: int = Field(ge=0, description="Held-out rows in the group (0: seen in the data, not in the held-out split).")
    insufficient: bool = Field(
        default=False, description="Fewer rows than minGroupSize: its numbers are too few to judge by."
    )
    positives: int | None = Field(default=None, ge=0, description="Rows whose true label is the positive class.")
    negatives: int | None = Field(default=None, ge=0, description="Rows whose true label is another class.")
    selection_rate: float | None = Field(default=None, description="Share of rows predicted as the positive class.")
    selection_rate_by_class: dict[str, float] | None = Field(
        default=None, description="Multiclass without positiveClass: the share predicted as each class."
    )
    accuracy: float | None = Field(default=None, description="Accuracy in the group.")
    precision: float | None = Field(default=None, description="Precision of the positive class (macro: multiclass).")
    recall: float | None = Field(default=None, description="Recall (true positive rate) of the positive class.")
    false_positive_rate: float | None = Field(default=None, description="False positive rate of the positive class.")
    mae: float | None = Field(default=None, description="Regression: mean absolute error in the group.")
    mean_prediction: float | None = Field(default=None, description="Regression: the mean prediction in the group.")


class SensitiveFeatureResult(ApiModel):
    """The fairness of a version with respect to one sensitive feature (or a pair of them)."""

    name: str = Field(min_length=1, description="The feature, or a pair as sex&race; gates name it so.")
    kind: Literal["categorical", "binned", "intersection"] = Field(description="How its groups were made.")
    used_as_input: bool = Field(description="Whether the model takes the column as an input.")
    bins: list[float] | None = Field(default=None, description="binned: the cut points.")
    of: list[str] | None = Field(default=None, description="intersection: the two features.")
    metrics: dict[str, float] = Field(
        default_factory=dict,
        description=(
            "Gaps between its groups (fairlearn): demographicParityDifference, demographicParityRatio, "
            "equalizedOddsDifference (classification); maeDifference, meanPredictionDifference (regression). "
            "A gap that is not defined (e.g. a ratio over no selection) is left out."
        ),
    )
    groups: list[GroupMetrics] = Field(description="Every group, small ones included and marked insufficient.")


class FairnessRecord(ApiModel):
    """Per-group metrics and the gaps between groups, on the held-out split (docs/fairness.md)."""

    library: str | None = Field(default=None, description="What computed it, e.g. fairlearn 0.15.0.")
    rows: int = Field(ge=0, description="Held-out rows evaluated.")
    min_group_size: int = Field(ge=1, description="Groups with fewer held-out rows are marked insufficient.")
    positive_class: str | None = Field(
        default=None, description="The class a selection is (binary, or named); empty: per class (multiclass)."
    )
    overall: dict[str, float] | None = Field(default=None, description="The same metrics over all held-out rows.")
    features: list[SensitiveFeatureResult] = Field(description="One entry per sensitive feature and intersection.")


class ImportanceEntry(ApiModel):
    """How much the held-out score drops when one source column is shuffled."""

    feature: str = Field(min_length=1, description="The source column (one-hot columns count as their column).")
    mean: float = Field(description="Mean drop of the score over the repeats.")
    std: float = Field(description="Standard deviation of the drop over the repeats.")


class FeatureImportance(ApiModel):
    """Global feature importance: permutation importance on the held-out split (scikit-learn)."""

    method: Literal["permutation"] = Field(default="permutation", description="How it was measured.")
    scoring: str = Field(description="The score whose drop is measured: accuracy or r2.")
    baseline: float | None = Field(default=None, description="The score with no column shuffled.")
    rows: int = Field(ge=0, description="Held-out rows used (a seeded sample when there were more).")
    repeats: int = Field(ge=1, description="Shuffles per column.")
    seed: int = Field(ge=0, description="Seed of the sample and the shuffles.")
    features: list[ImportanceEntry] = Field(description="Every input column, most important first.")


class Gate(ApiModel):
    """A metric threshold a version must meet to enter a stage."""

    stage: Literal["Staging", "Production"] = Field(description="The stage the gate guards.")
    metric: str = Field(
        min_length=1,
        description=(
            "A metric in spec.metrics, e.g. accuracy, or in spec.fairness, e.g. "
            "fairness.sex.demographicParityDifference (docs/fairness.md)."
        ),
    )
    op: Comparison = Field(default=">=", description="How the metric compares to the threshold.")
    threshold: float = Field(description="The threshold.")


class Trainer(ApiModel):
    """A person (or service account) behind a version's training, recorded when it is registered."""

    user: str = Field(min_length=1, description="The authenticated username that created the training.")
    uid: str | None = Field(default=None, description="That user's UID.")
    via: str | None = Field(
        default=None, description="How: e.g. 'created TrainingRun ml/iris-train', or the version it retrains."
    )


class ModelVersionSpec(ApiModel):
    """A registered version: its artifact, evidence and desired stage."""

    model: ModelName
    version: int = Field(ge=1, description="The version number, unique per model.")
    artifact: Artifact = Field(description="The artifact. Immutable once set.")
    framework: Framework | None = Field(default=None, description="The framework and its version.")
    task: Task | None = Field(default=None, description="classification or regression.")
    metrics: dict[str, float] | None = Field(
        default=None, description="Metrics on the held-out data. Immutable once set."
    )
    signature: Signature | None = Field(default=None, description="Inputs and outputs of the model.")
    lineage: Lineage | None = Field(default=None, description="Where the version came from. Immutable once set.")
    reference_stats: ReferenceStats | None = Field(
        default=None, description="Per-feature training distribution, for drift detection."
    )
    model_card: ModelCard | None = Field(default=None, description="Description, intended use, limitations.")
    fairness: FairnessRecord | None = Field(
        default=None, description="Per-group metrics by sensitive feature on the held-out data. Immutable once set."
    )
    feature_importance: FeatureImportance | None = Field(
        default=None, description="Permutation importance per input column on the held-out data. Immutable once set."
    )
    stage: Stage = Field(
        default="None",
        description=(
            "The stage asked for: None, Staging, Production or Archived. status.stage is the stage granted "
            "once gates pass and approvals suffice."
        ),
    )
    gates: list[Gate] | None = Field(
        default=None, description="Extra gates for this version, on top of (never looser than) the policy's."
    )
    trained_by: list[Trainer] | None = Field(
        default=None,
        description=(
            "Who trained it: the creator of its TrainingRun and, for a retrain, the people behind the version "
            "it retrains. Written by the operator when it registers the version (or by a trusted applier), "
            "never changed afterwards; none of them may approve it where the policy asks for four eyes."
        ),
    )

    model_config = with_rules(
        *(
            {
                "rule": f"!has(oldSelf.{field}) || (has(self.{field}) && self.{field} == oldSelf.{field})",
                "message": f"spec.{field} is immutable once set: register a new ModelVersion instead",
                "fieldPath": f".{field}",
                "reason": "FieldValueForbidden",
            }
            for field in ("artifact", "metrics", "lineage", "fairness", "featureImportance")
        ),
        {
            # Set at registration or never: neither added, changed nor removed afterwards.
            "rule": (
                "has(oldSelf.trainedBy) ? (has(self.trainedBy) && self.trainedBy == oldSelf.trainedBy) "
                ": !has(self.trainedBy)"
            ),
            "message": TRAINED_BY_IMMUTABLE,
            "fieldPath": ".trainedBy",
            "reason": "FieldValueForbidden",
        },
        {
            "rule": "self.model == oldSelf.model && self.version == oldSelf.version",
            "message": "spec.model and spec.version are immutable: register a new ModelVersion instead",
            "reason": "FieldValueForbidden",
        },
    )


class GateResult(StatusModel):
    """The verdict of one gate."""

    stage: str = Field(description="The stage the gate guards.")
    metric: str = Field(description="The metric.")
    op: str = Field(description="The comparison.")
    threshold: float = Field(description="The threshold.")
    value: float | None = Field(default=None, description="The version's value; empty when it has none.")
    passed: bool = Field(description="Whether the gate passes.")
    insufficient_evidence: str | None = Field(
        default=None,
        description=(
            "Fairness gates: which groups have too few held-out rows to judge by. The gate fails for it unless "
            "the policy allows insufficient evidence for the stage."
        ),
    )
    source: Literal["policy", "version"] = Field(default="policy", description="Who set the gate.")


class Approval(StatusModel):
    """An approval, recorded from the identity the API server authenticated."""

    stage: str = Field(description="The stage approved.")
    user: str = Field(description="The authenticated username (admission userInfo).")
    uid: str | None = Field(default=None, description="The authenticated user's UID.")
    groups: list[str] | None = Field(default=None, description="The authenticated user's groups.")
    at: str = Field(json_schema_extra={"format": "date-time"}, description="When it was approved.")
    reviewer: str | None = Field(
        default=None, description="A reviewer asserted by a trusted GitOps applier (see assertedBy)."
    )
    asserted_by: str | None = Field(default=None, description="The trusted applier that asserted the reviewer.")


class Transition(StatusModel):
    """One granted stage change."""

    from_: str = Field(alias="from", description="The stage before.")
    to: str = Field(description="The stage after.")
    by: str = Field(description="Who or what caused it (an authenticated user or the operator).")
    at: str = Field(json_schema_extra={"format": "date-time"}, description="When.")
    reason: str | None = Field(default=None, description="Why.")


class Rejection(StatusModel):
    """Evidence that a canary of this version was rolled back."""

    deployment: str = Field(description="namespace/name of the ModelDeployment.")
    metric: str = Field(description="The failing metric.")
    value: float | None = Field(default=None, description="Its value.")
    message: str | None = Field(default=None, description="What happened.")
    at: str = Field(json_schema_extra={"format": "date-time"}, description="When.")


class StageRequest(StatusModel):
    """The stage last asked for, as the operator saw it (the audit log records each change once)."""

    stage: Stage = Field(description="The stage spec.stage asked for.")
    by: str | None = Field(default=None, description="Who asked (recorded by the mutating webhook).")
    at: str | None = Field(default=None, json_schema_extra={"format": "date-time"}, description="When it was asked.")


class DeploymentRef(StatusModel):
    """A ModelDeployment that serves this version."""

    namespace: str = Field(description="Its namespace.")
    name: str = Field(description="Its name.")
    role: Literal["stable", "canary"] | None = Field(default=None, description="Stable or canary.")


class ModelVersionStatus(StatusModel):
    """The granted stage and the evidence behind it."""

    observed_generation: int = observed_generation_field()
    conditions: list[Condition] = conditions_field(
        "'Validated' (the gates), 'IntegrityVerified' (the artifact's digest), 'Approved' (the approvals), and "
        "for a classifier 'EstimateTrusted': whether its quality estimated from predicted probabilities before "
        "labels arrive can be trusted, from the expected calibration error training measured (spec.metrics.ece; "
        f"False with reason PoorCalibration above {MAX_TRUSTED_ECE:g}, NoProbabilities when none was recorded)."
    )
    stage: Stage = Field(default="None", description="The stage granted.")
    message: str | None = Field(default=None, description="A one-line summary, e.g. what a move still needs.")
    gates: list[GateResult] | None = Field(default=None, description="Each gate's metric, threshold and verdict.")
    approvals: list[Approval] | None = Field(default=None, description="Approvals, by authenticated identity.")
    history: list[Transition] | None = Field(default=None, description="Every granted stage change.")
    rejected: Rejection | None = Field(default=None, description="Set when a canary of this version was rolled back.")
    stage_request: StageRequest | None = Field(
        default=None, description="The stage last asked for, who asked and when (written by the operator only)."
    )
    deployed_by: list[DeploymentRef] | None = Field(default=None, description="Deployments serving this version.")
    kopf: dict[str, Any] | None = kopf_field()
