"""The whole pipeline on a real cluster: training Job, registration, approval, canary, rollback, drift.

Run on a kind cluster prepared by ``make kind-up`` (the image, the chart in ``modelops-system`` with
its webhooks and the default policy — Production needs one approval, four eyes — and the examples
in namespace ``ml``), with ``make e2e``. Without such a cluster every test skips and says what is
missing (see ``conftest.py``; ``MODELOPS_E2E_REQUIRE=1`` turns the skip into a failure). Everything
goes through ``kubectl`` and the ``kubectl-modelops`` console script, as a person would.

The steps share one module-scoped :class:`Pipeline` and run in order; a step whose predecessor did
not pass is skipped, naming it. Every failure names its step and shows the objects' status,
conditions and Events. The model of these tests is ``e2e-<random>`` (its own TrainingRuns, versions,
deployment and policy), so they never fight the examples' ``breast-cancer`` deployment, and a
second run on the same cluster starts clean. Its objects are deleted at the end when every step
passed, and kept for ``kubectl get modelops -A -o yaml`` otherwise.

0. The examples are all reconciled (``status.observedGeneration``, a ``Ready`` condition).
1. Training and registration: the example TrainingRun's Job completes and registers a ModelVersion
   (``Ready``, the artifact's sha256 equal to the run's ``status.artifact``, ``referenceStats``,
   lineage); three runs of the e2e model register the versions the next steps use.
2. Approval: Production asked with ``kubectl modelops promote --stage`` and a version gate that
   fails; a user with only the editor role is denied (the message names the ``approve`` verb); the
   kind admin, who created the TrainingRun, is denied by four eyes; a ServiceAccount bound to
   ``modelops-approver`` approves with ``kubectl modelops approve`` → ``status.approvals`` records
   ``system:serviceaccount:<ns>:<sa>``; Production is granted only once the gate passes.
3. Canary: a ModelDeployment on ``track: Production`` (2 replicas, 5 s analysis interval) serves v1
   (stable Deployment ready, ``/v2/health/ready`` and ``/v2/models/<model>`` answered through the
   API server's Service proxy); v2 promoted and approved by an impersonated user (``kubectl --as``)
   runs as a canary step by step (``status.step``, ``canaryWeight``: 25 % under analysis, 50 % in a
   timed pause, then 100 %) and is promoted; v1 is archived.
4. Rollback: the analysis is made to fail (``inconclusivePolicy: Fail``, so no data is a failure,
   plus a user PromQL check ``vector(1)`` with ``result < 0``); v3's canary → ``RolledBack``,
   ``Stalled=True`` reason ``RolledBack``, ``Degraded=True`` reason ``AnalysisFailed``, the stable
   Deployment and its pods untouched, the canary scaled to 0, v3's ``status.rejected`` set.
5. Drift: a DriftPolicy on the deployment; the bundled breast-cancer rows with two features scaled
   threefold are sent to the Service → ``status.drifted`` true, those features drifted and an
   unshifted one not.

Prometheus (step 5 only; the canary steps pass or fail without one by ``inconclusivePolicy``):
``make kind-up`` installs none and leaves the chart's ``prometheus.url`` empty. The ``prometheus``
fixture then applies ``tests/e2e/prometheus.yaml`` — the official image, no operator, scraping
every pod annotated ``prometheus.io/scrape`` (the model servers are) every 5 s and adding the
``namespace`` label, served as ``prometheus-operated.monitoring:9090``, the address the examples
name — and the DriftPolicy points at it with ``spec.prometheus.address``. The CI runner pulls the
image from quay.io. If no Prometheus answers within four minutes (or ``MODELOPS_E2E_PROMETHEUS=off``
and the chart has no ``prometheus.url``), step 5 skips with the reason. For the operator's own
default, CI could install the chart with ``--set prometheus.url=http://prometheus-operated.monitoring.svc:9090``
after applying the same file.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e.kube import JsonDict, Kubectl, KubectlError, Prometheus, condition, current, is_true, wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
API = "modelops.io/v1alpha1"
TR = "trainingruns.modelops.io"
MV = "modelversions.modelops.io"
MD = "modeldeployments.modelops.io"
DP = "driftpolicies.modelops.io"
NAMESPACE = os.environ.get("MODELOPS_E2E_NAMESPACE") or "ml"
ARTIFACT_CLAIM = "modelops-artifacts"
EXAMPLE_RUN = "breast-cancer-logreg"
SHA256 = re.compile(r"^[a-f0-9]{64}$")
APPROVE = "modelops.io/approve"
REPLICAS = 2
CANARY_STEPS: list[JsonDict] = [
    {"setWeight": 25},
    {"analysis": {"duration": "15s"}},
    {"setWeight": 50},
    {"pause": {"duration": "20s"}},
    {"setWeight": 100},
]
ANALYSIS_STEP, PAUSE_STEP = 1, 3
# The canary of step 4 fails: no data counts as a failure, and the user check can never pass.
FAILING_ANALYSIS: JsonDict = {
    "interval": "5s",
    "failureLimit": 1,
    "inconclusivePolicy": "Fail",
    "metrics": [{"name": "e2e-always-fails", "query": "vector(1)", "successCondition": "result < 0"}],
}
CHECK_NAMES = {"error-rate", "latency-p99", "prediction-shift", "e2e-always-fails"}
SHIFT_FACTOR = 3.0
RESOURCES = {"TrainingRun": TR, "ModelVersion": MV, "ModelDeployment": MD, "DriftPolicy": DP}


def _if(obj: JsonDict | None, ok: Callable[[JsonDict], bool]) -> JsonDict | None:
    """``obj`` when it exists and ``ok`` holds, else None (for wait_for)."""
    return obj if obj is not None and ok(obj) else None


def _expect(where: str, actual: Mapping[str, Any] | None, context: str = "", **expected: Any) -> None:
    """Each named field of ``actual`` has the expected value; the message shows them all."""
    got = {key: (actual or {}).get(key) for key in expected}
    assert got == expected, f"{where}: expected {expected}, got {got}{context}"


def _expect_condition(
    where: str, obj: Mapping[str, Any], type_: str, status: str, reason: str, context: str = ""
) -> None:
    _expect(f"{where}: condition {type_}", condition(obj, type_), context, status=status, reason=reason)


# --- the shared state ------------------------------------------------------------------------------


@dataclass
class Pipeline:
    """What the steps share: the cluster, the e2e model's names, and which steps passed."""

    kubectl: Kubectl
    namespace: str
    model: str
    workdir: Path
    runs: list[str]
    versions: list[str] = field(default_factory=list)
    passed: set[str] = field(default_factory=set)
    created: list[tuple[str, str]] = field(default_factory=list)  # (resource, name) in the namespace

    @property
    def deployment(self) -> str:
        return self.model

    @property
    def policy(self) -> str:
        return f"{self.model}-inputs"

    @property
    def approver_sa(self) -> str:
        return f"{self.model}-approver"

    @property
    def approver_sa_user(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.approver_sa}"

    @property
    def approver_user(self) -> str:
        return f"{self.model}-approver@example.com"

    @property
    def outsider_user(self) -> str:
        return f"{self.model}-editor@example.com"

    def require(self, *steps: str) -> None:
        for step in steps:
            if step not in self.passed:
                pytest.skip(f"needs step {step!r}, which did not pass")

    def version(self, index: int) -> str:
        self.require("registration")
        return self.versions[index]

    # --- diagnostics ---------------------------------------------------------------------------

    def explain(self, *objects: tuple[str, str]) -> Callable[[], str]:
        def text() -> str:
            return "\n".join(self.kubectl.describe(resource, name, self.namespace) for resource, name in objects)

        return text

    def explain_rollout(self, extra: Sequence[tuple[str, str]] = ()) -> Callable[[], str]:
        def text() -> str:
            parts = [self.kubectl.describe(MD, self.deployment, self.namespace)]
            parts += [self.kubectl.describe(resource, name, self.namespace) for resource, name in extra]
            parts.append(self.children_summary())
            return "\n".join(parts)

        return text

    def children_summary(self) -> str:
        lines = []
        for role in ("stable", "canary"):
            try:
                found = self.kubectl.get("deployment", f"{self.deployment}-{role}", self.namespace)
            except KubectlError as error:
                lines.append(f"  deployment {self.deployment}-{role}: {error.stderr.strip()}")
                continue
            if found is None:
                lines.append(f"  deployment {self.deployment}-{role}: absent")
                continue
            labels = found["spec"]["template"]["metadata"].get("labels") or {}
            status = found.get("status") or {}
            conditions = [(c.get("type"), c.get("status"), c.get("reason")) for c in status.get("conditions") or ()]
            lines.append(
                f"  deployment {self.deployment}-{role}: version={labels.get('modelops.io/version')} "
                f"replicas={found['spec'].get('replicas')} ready={status.get('readyReplicas', 0)} "
                f"conditions={conditions}"
            )
        return "children:\n" + "\n".join(lines)

    # --- the plugin ------------------------------------------------------------------------------

    def kubeconfig_for(self, name: str, token: str | None = None) -> Path:
        """A one-context kubeconfig: the current one flattened, or the same cluster with a token."""
        config: JsonDict = json.loads(
            self.kubectl.run("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
        )
        if token is not None:
            cluster = config["clusters"][0]
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": cluster["name"], "cluster": cluster["cluster"]}],
                "users": [{"name": name, "user": {"token": token}}],
                "contexts": [{"name": name, "context": {"cluster": cluster["name"], "user": name}}],
                "current-context": name,
            }
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def plugin(self, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """``kubectl modelops`` (the console script of this environment) with a kubeconfig."""
        command = [*plugin_command(), "--kubeconfig", str(kubeconfig), "-n", self.namespace, *args]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"} | {"NO_COLOR": "1"}
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)


def plugin_command() -> list[str]:
    beside = Path(sys.executable).parent / "kubectl-modelops"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("kubectl-modelops")
    if found:
        return [found]
    return [sys.executable, "-c", "import sys; from modelops.plugin.cli import main; sys.exit(main())"]


def _ok(done: subprocess.CompletedProcess[str], what: str) -> str:
    assert done.returncode == 0, f"{what}: exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return done.stdout


def training_run(name: str, namespace: str, model: str, c: float) -> JsonDict:
    return {
        "apiVersion": API,
        "kind": "TrainingRun",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "modelops-e2e"}},
        "spec": {
            "model": model,
            "dataset": {"uri": "sklearn://breast_cancer", "target": "target", "testSize": 0.2, "seed": 7},
            "estimator": {
                "className": "sklearn.linear_model.LogisticRegression",
                "params": {"C": c, "max_iter": 500},
                "preprocessing": {"scaleNumeric": True},
            },
            "artifactStore": {"uri": f"pvc://{ARTIFACT_CLAIM}/{model}"},
            "pod": {"resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}}},
            "backoffLimit": 1,
            "activeDeadlineSeconds": 900,
            "modelCard": {"description": "A model of the e2e tests.", "owners": ["modelops-e2e"]},
        },
    }


def model_deployment(name: str, namespace: str, model: str) -> JsonDict:
    return {
        "apiVersion": API,
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "modelops-e2e"}},
        "spec": {
            "model": model,
            "track": "Production",
            "replicas": REPLICAS,
            "rollout": {"strategy": "Canary", "steps": CANARY_STEPS},
            # No Prometheus is needed for this canary to pass: no data counts as a pass.
            "analysis": {"interval": "5s", "failureLimit": 1, "inconclusivePolicy": "Pass"},
            "server": {"workers": 1},
            "pod": {"resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "512Mi"}}},
        },
    }


def _rbac(p: Pipeline) -> list[JsonDict]:
    labels = {"app.kubernetes.io/part-of": "modelops-e2e"}
    meta = {"namespace": p.namespace, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": p.approver_sa, **meta}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{p.model}-approvers", **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelops-approver"},
            "subjects": [
                {"kind": "ServiceAccount", "name": p.approver_sa, "namespace": p.namespace},
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": p.approver_user},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{p.model}-editors", **meta},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "modelops-editor"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": p.outsider_user}],
        },
    ]


@pytest.fixture(scope="module")
def pipeline(
    kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    if kubectl.get("namespace", NAMESPACE) is None or kubectl.get("pvc", ARTIFACT_CLAIM, NAMESPACE) is None:
        pytest.fail(
            f"namespace {NAMESPACE} and its PVC {ARTIFACT_CLAIM} are missing: make kind-up creates them "
            "(deploy/kind/artifacts-pvc.yaml)",
            pytrace=False,
        )
    model = f"e2e-{secrets.token_hex(3)}"
    p = Pipeline(
        kubectl=kubectl, namespace=NAMESPACE, model=model, workdir=tmp_path_factory.mktemp("e2e"),
        runs=[f"{model}-a", f"{model}-b", f"{model}-c"],
    )  # fmt: skip
    kubectl.apply(*_rbac(p))
    p.created += [("serviceaccount", p.approver_sa), ("rolebinding", f"{model}-approvers"),
                  ("rolebinding", f"{model}-editors")]  # fmt: skip
    # Three versions of the e2e model, trained side by side while step 1 looks at the example.
    for run, c in zip(p.runs, (1.0, 0.5, 2.0), strict=True):
        kubectl.create(training_run(run, p.namespace, model, c))
        p.created.append((TR, run))
    yield p
    if request.session.testsfailed or os.environ.get("MODELOPS_E2E_KEEP"):
        print(f"\ne2e: the objects of model {model} in namespace {p.namespace} are kept for inspection")
        return
    for resource, name in reversed(p.created):
        kubectl.delete(resource, name, p.namespace)
    kubectl.run("delete", MV, "-n", p.namespace, "-l", f"modelops.io/model={model}", "--wait=false", timeout=120)


# --- step 0: the examples ----------------------------------------------------------------------


def _examples() -> list[JsonDict]:
    return [
        doc
        for path in sorted((REPO / "manifests" / "examples").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@pytest.mark.timeout(600)
def test_step0_every_example_is_reconciled(pipeline: Pipeline) -> None:
    kubectl = pipeline.kubectl
    for obj in _examples():
        meta = obj["metadata"]
        if kubectl.get(RESOURCES[obj["kind"]], meta["name"], meta["namespace"]) is None:
            kubectl.create(obj)  # make kind-up applied them; a cluster prepared by hand may lack one
    for obj in _examples():
        meta = obj["metadata"]
        _wait_reconciled(kubectl, RESOURCES[obj["kind"]], meta["name"], meta["namespace"], "step 0 (examples)")
    pipeline.passed.add("examples")


def _wait_reconciled(kubectl: Kubectl, resource: str, name: str, namespace: str, where: str) -> JsonDict:
    """The operator has seen the object's spec and written a Ready condition."""
    return wait_for(
        f"{where}: {resource} {namespace}/{name} reconciled (observedGeneration = generation, a Ready condition)",
        lambda: _if(kubectl.get(resource, name, namespace), lambda o: current(o) and condition(o, "Ready") is not None),
        timeout=180,
        explain=lambda: kubectl.describe(resource, name, namespace),
    )


# --- step 1: training and registration ---------------------------------------------------------


def _finished_run(kubectl: Kubectl, name: str, namespace: str) -> JsonDict | None:
    run = kubectl.get(TR, name, namespace)
    status = (run or {}).get("status") or {}
    if status.get("phase") == "Failed":
        raise AssertionError(f"TrainingRun {namespace}/{name} failed:\n{kubectl.describe(TR, name, namespace)}")
    return run if status.get("phase") == "Succeeded" and status.get("modelVersion") else None


def _check_registration(kubectl: Kubectl, run_name: str, namespace: str, timeout: float) -> str:
    """The run's Job completed and its registered ModelVersion is Ready, pinned and described."""
    where = f"step 1 (training and registration) of TrainingRun {namespace}/{run_name}"
    run = wait_for(
        f"{where}: phase Succeeded with status.modelVersion",
        lambda: _finished_run(kubectl, run_name, namespace),
        timeout=timeout,
        interval=3.0,
        explain=lambda: kubectl.describe(TR, run_name, namespace),
    )
    status = run["status"]
    job = kubectl.get("job", status.get("jobName") or f"{run_name}-train", namespace)
    assert job is not None, f"{where}: its Job {status.get('jobName')} is gone"
    complete = [c for c in job.get("status", {}).get("conditions") or [] if c.get("type") == "Complete"]
    assert complete, f"{where}: Job {job['metadata']['name']} not Complete: {job.get('status')}"
    _expect(f"{where}: Job {job['metadata']['name']}", complete[0], "", status="True")
    version_name = str(status["modelVersion"])
    version = wait_for(
        f"{where}: ModelVersion {version_name} Ready",
        lambda: _if(kubectl.get(MV, version_name, namespace), lambda v: current(v) and is_true(v, "Ready")),
        timeout=120,
        explain=lambda: kubectl.describe(MV, version_name, namespace),
    )
    spec = version["spec"]
    explain = f"\n{kubectl.describe(MV, version_name, namespace)}"
    sha = (spec.get("artifact") or {}).get("sha256", "")
    assert SHA256.match(sha), f"{where}: spec.artifact.sha256 {sha!r} is not a sha256{explain}"
    run_artifact = status.get("artifact") or {}
    assert run_artifact.get("sha256") == sha, (
        f"{where}: the run's status.artifact {run_artifact} does not carry the version's sha256 {sha}{explain}"
    )
    assert spec["artifact"]["uri"].startswith(f"pvc://{ARTIFACT_CLAIM}/"), f"{where}: artifact {spec['artifact']}"
    features = (spec.get("referenceStats") or {}).get("features") or []
    assert features, f"{where}: spec.referenceStats has no features{explain}"
    assert all(f.get("counts") for f in features), f"{where}: a reference feature has no counts{explain}"
    assert spec["referenceStats"].get("sampleSize", 0) > 0, f"{where}: referenceStats.sampleSize{explain}"
    assert (spec.get("lineage") or {}).get("trainingRun", {}).get("name") == run_name, f"{where}: lineage{explain}"
    assert spec.get("metrics"), f"{where}: no metrics{explain}"
    assert version["metadata"]["labels"].get("modelops.io/model") == spec["model"], f"{where}: model label{explain}"
    return version_name


@pytest.mark.timeout(1500)
def test_step1_training_jobs_complete_and_register_versions(pipeline: Pipeline) -> None:
    p = pipeline
    # The example's sweep (make kind-up already waited for it to be Ready).
    _check_registration(p.kubectl, EXAMPLE_RUN, "ml", timeout=900)
    # The e2e model's three runs, created by the fixture.
    p.versions = [_check_registration(p.kubectl, run, p.namespace, timeout=600) for run in p.runs]
    assert len(set(p.versions)) == 3, f"step 1: three runs registered {p.versions}"
    for version in p.versions:
        assert version.startswith(f"{p.model}-v"), f"step 1: version name {version} is not <model>-v<N>"
        stage = p.kubectl.must_get(MV, version, p.namespace)["status"].get("stage")
        assert stage == "None", f"step 1: a registered version starts at stage None, {version} is at {stage}"
    p.passed.add("registration")


# --- step 2: approval --------------------------------------------------------------------------


def _stage(p: Pipeline, version: str) -> str | None:
    obj = p.kubectl.get(MV, version, p.namespace)
    stage = (obj or {}).get("status", {}).get("stage")
    return str(stage) if stage is not None else None


def _approvals(obj: Mapping[str, Any] | None) -> list[JsonDict]:
    return list(((obj or {}).get("status") or {}).get("approvals") or [])


def _whoami(kubectl: Kubectl) -> str | None:
    done = kubectl.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", check=False)
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


@pytest.mark.timeout(600)
def test_step2_approval_by_authenticated_identity_and_four_eyes(pipeline: Pipeline) -> None:
    p = pipeline
    p.require("registration")
    kubectl = p.kubectl
    v1 = p.version(0)
    where = f"step 2 (approval) of ModelVersion {p.namespace}/{v1}"
    explain = p.explain((MV, v1))
    metrics = kubectl.must_get(MV, v1, p.namespace)["spec"]["metrics"]
    metric = "f1" if "f1" in metrics else sorted(metrics)[0]

    # Ask for Production with a gate that cannot pass yet.
    kubectl.patch(MV, v1, p.namespace, {"spec": {"gates": [
        {"stage": "Production", "metric": metric, "op": ">=", "threshold": 1.01}]}})  # fmt: skip
    admin = p.kubeconfig_for("admin")
    _ok(p.plugin(admin, "promote", v1, "--stage", "Production"), f"{where}: kubectl modelops promote --stage")
    wait_for(
        f"{where}: Validated=False (GatesFailed) and Approved=False (AwaitingApproval), stage not granted",
        lambda: _if(kubectl.get(MV, v1, p.namespace), lambda v: current(v)
                    and (condition(v, "Validated") or {}).get("reason") == "GatesFailed"
                    and (condition(v, "Approved") or {}).get("reason") == "AwaitingApproval"
                    and v["status"].get("stage") != "Production"),
        timeout=90, explain=explain,
    )  # fmt: skip

    # Someone who may edit ModelVersions but not approve them.
    wait_for(
        f"{where}: RBAC for {p.outsider_user} (edit) and {p.approver_user} (approve) in effect",
        lambda: kubectl.run("auth", "can-i", "patch", MV, "-n", p.namespace, "--as", p.outsider_user,
                            check=False).returncode == 0
        and kubectl.run("auth", "can-i", "approve", MV, "-n", p.namespace, "--as", p.approver_user,
                        check=False).returncode == 0,
        timeout=30,
    )  # fmt: skip
    outsider = kubectl.impersonating(p.outsider_user)
    denied = outsider.run("annotate", MV, v1, "-n", p.namespace, f"{APPROVE}=Production", "--overwrite", check=False)
    assert denied.returncode != 0, f"{where}: {p.outsider_user} (no approve verb) was allowed to approve"
    for needed in ("may not approve", "'approve' verb on modelversions.modelops.io"):
        assert needed in denied.stderr, f"{where}: the denial does not say {needed!r}: {denied.stderr}"
    assert p.outsider_user in denied.stderr, f"{where}: the denial does not name the user: {denied.stderr}"

    # The kind admin created the TrainingRun: four eyes.
    own = p.plugin(admin, "approve", v1, "--stage", "Production")
    assert own.returncode == 1, f"{where}: the creator's own approval was not denied: {own.stdout} {own.stderr}"
    assert "four eyes" in own.stderr, f"{where}: the creator's denial does not say four eyes: {own.stderr}"
    me = _whoami(kubectl)
    if me:
        assert me in own.stderr, f"{where}: the four-eyes denial does not name {me}: {own.stderr}"
    assert not _approvals(kubectl.get(MV, v1, p.namespace)), f"{where}: a denied approval was recorded\n{explain()}"

    # A ServiceAccount bound to modelops-approver approves with the plugin, as itself.
    token = kubectl.run("create", "token", p.approver_sa, "-n", p.namespace, "--duration", "1h").stdout.strip()
    approver = p.kubeconfig_for("approver", token)
    _ok(p.plugin(approver, "approve", v1, "--stage", "Production"), f"{where}: kubectl modelops approve as SA")
    recorded = wait_for(
        f"{where}: status.approvals records {p.approver_sa_user} for Production",
        lambda: _if(kubectl.get(MV, v1, p.namespace), lambda v: current(v) and is_true(v, "Approved") and any(
            a.get("user") == p.approver_sa_user and a.get("stage") == "Production" for a in _approvals(v))),
        timeout=90, explain=explain,
    )  # fmt: skip
    assert recorded["status"].get("stage") != "Production", f"{where}: granted although a gate fails\n{explain()}"
    record = next(a for a in _approvals(recorded) if a.get("user") == p.approver_sa_user)
    assert "system:serviceaccounts" in (record.get("groups") or []), f"{where}: the record's groups: {record}"

    # Production once the gate passes.
    kubectl.patch(MV, v1, p.namespace, {"spec": {"gates": [
        {"stage": "Production", "metric": metric, "op": ">=", "threshold": 0.5}]}})  # fmt: skip
    granted = wait_for(
        f"{where}: status.stage Production once the gate passes",
        lambda: _if(kubectl.get(MV, v1, p.namespace),
                    lambda v: current(v) and v["status"].get("stage") == "Production"),
        timeout=90, explain=explain,
    )  # fmt: skip
    status = granted["status"]
    assert status.get("gates"), f"{where}: no status.gates\n{explain()}"
    assert all(g.get("passed") for g in status["gates"]), f"{where}: gates {status['gates']}"
    assert is_true(granted, "Ready"), f"{where}: not Ready after the grant\n{explain()}"
    last = (status.get("history") or [{}])[-1]
    assert last.get("to") == "Production", f"{where}: the last history entry is not the grant: {last}"
    assert p.approver_sa_user in str(last.get("by")), f"{where}: the grant does not name the approver: {last}"
    history = p.plugin(admin, "history", v1, "-o", "json")
    assert p.approver_sa_user in _ok(history, f"{where}: kubectl modelops history"), history.stdout
    p.passed.add("approval")


# --- step 3: serving and a canary ----------------------------------------------------------------


def _proxy(p: Pipeline, path: str) -> str:
    return Kubectl.service_path(p.namespace, p.deployment, "http", path)


def _served_versions(p: Pipeline) -> list[str]:
    meta = json.loads(p.kubectl.raw_get(_proxy(p, f"v2/models/{p.model}")))
    return [str(v) for v in meta.get("versions") or []]


def _stable_ready(p: Pipeline, version: str) -> JsonDict | None:
    found = p.kubectl.get("deployment", f"{p.deployment}-stable", p.namespace)
    if found is None:
        return None
    labels = found["spec"]["template"]["metadata"].get("labels") or {}
    status = found.get("status") or {}
    ok = (
        labels.get("modelops.io/version") == version
        and status.get("observedGeneration") == found["metadata"].get("generation")
        and status.get("readyReplicas", 0) == found["spec"].get("replicas") == REPLICAS
        and status.get("updatedReplicas", 0) == REPLICAS
        and status.get("replicas", 0) == REPLICAS
    )
    return found if ok else None


def _feature_rows(version: Mapping[str, Any], shifted: Sequence[str] = ()) -> tuple[list[str], list[list[float]]]:
    """The bundled breast-cancer rows in the version's input order, ``shifted`` features scaled."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    columns = [str(name) for name in data.feature_names]
    names = [str(i["name"]) for i in version["spec"]["signature"]["inputs"]]
    missing = [n for n in names if n not in columns]
    assert not missing, f"the version's inputs {missing} are not columns of sklearn's breast_cancer"
    order = [columns.index(n) for n in names]
    factors = [SHIFT_FACTOR if n in shifted else 1.0 for n in names]
    rows = [[float(row[i]) * f for i, f in zip(order, factors, strict=True)] for row in data.data]
    return names, rows


def _infer(p: Pipeline, rows: Sequence[Sequence[float]]) -> JsonDict:
    body = {
        "inputs": [{"name": "input-0", "shape": [len(rows), len(rows[0])], "datatype": "FP64",
                    "data": [value for row in rows for value in row]}],
    }  # fmt: skip
    answer: JsonDict = json.loads(p.kubectl.raw_post(_proxy(p, f"v2/models/{p.model}/infer"), body))
    return answer


Observation = tuple[Any, ...]


def _observe(
    p: Pipeline, what: str, until: Callable[[JsonDict], bool], timeout: float, extra: Sequence[tuple[str, str]] = ()
) -> tuple[JsonDict, list[Observation], dict[str, Any]]:
    """Poll the ModelDeployment until ``until``, recording each distinct rollout state on the way."""
    trace: list[Observation] = []
    canary_seen: dict[str, Any] = {}
    explain = p.explain_rollout(extra)

    def probe() -> JsonDict | None:
        md = p.kubectl.must_get(MD, p.deployment, p.namespace)
        st = md.get("status") or {}
        seen = (st.get("phase"), st.get("canaryVersion"), st.get("step"), st.get("canaryWeight"),
                st.get("stableVersion"))  # fmt: skip
        if not trace or trace[-1] != seen:
            trace.append(seen)
        if st.get("phase") == "Paused" and st.get("canaryVersion") and "paused" not in canary_seen:
            canary = p.kubectl.get("deployment", f"{p.deployment}-canary", p.namespace) or {}
            labels = (canary.get("spec") or {}).get("template", {}).get("metadata", {}).get("labels") or {}
            if labels.get("modelops.io/version") == st.get("canaryVersion"):
                canary_seen["paused"] = (labels.get("modelops.io/version"), canary["spec"].get("replicas"))
        return md if until(md) else None

    def text() -> str:
        states = "\n".join(f"    phase={o[0]} canary={o[1]} step={o[2]} weight={o[3]} stable={o[4]}" for o in trace)
        return f"{explain()}\n  rollout states seen:\n{states}"

    md = wait_for(what, probe, timeout=timeout, interval=0.5, explain=text)
    return md, trace, canary_seen


@pytest.mark.timeout(900)
def test_step3_serves_production_and_promotes_a_canary_step_by_step(pipeline: Pipeline) -> None:
    p = pipeline
    p.require("approval")
    kubectl = p.kubectl
    v1, v2 = p.version(0), p.version(1)
    where = f"step 3 (canary) of ModelDeployment {p.namespace}/{p.deployment}"
    kubectl.create(model_deployment(p.deployment, p.namespace, p.model))
    p.created.append((MD, p.deployment))

    md, _, _ = _observe(
        p, f"{where}: Healthy, serving the Production version {v1}",
        lambda m: current(m) and m["status"].get("phase") == "Healthy" and m["status"].get("stableVersion") == v1
        and is_true(m, "Ready"),
        timeout=240,
    )  # fmt: skip
    url = f"http://{p.deployment}.{p.namespace}.svc:80/v2/models/{p.model}"
    _expect(where, md["status"], "", servingVersion=v1, desiredVersion=v1, url=url)
    wait_for(f"{where}: stable Deployment ready with {REPLICAS} replicas of {v1}", lambda: _stable_ready(p, v1),
             timeout=300, interval=2.0, explain=p.explain_rollout())  # fmt: skip
    wait_for(f"{where}: /v2/health/ready through the Service", lambda: kubectl.raw_get(_proxy(p, "v2/health/ready"))
             is not None, timeout=60, explain=p.explain_rollout())  # fmt: skip
    assert _served_versions(p) == [v1], f"{where}: the Service does not serve {v1}"
    version = kubectl.must_get(MV, v1, p.namespace)
    _, rows = _feature_rows(version)
    answer = _infer(p, rows[:5])
    _expect(f"{where}: infer", answer, "", model_name=p.model)
    assert answer.get("outputs"), f"{where}: infer answered no outputs: {answer}"

    # v2 asked for Production and approved by an impersonated approver: the canary starts.
    admin = p.kubeconfig_for("admin")
    _ok(p.plugin(admin, "promote", v2, "--stage", "Production"), f"{where}: kubectl modelops promote {v2}")
    kubectl.impersonating(p.approver_user).run(
        "annotate", MV, v2, "-n", p.namespace, f"{APPROVE}=Production", "--overwrite"
    )
    md, trace, canary_seen = _observe(
        p, f"{where}: the canary of {v2} walks its steps and is promoted",
        lambda m: m["status"].get("phase") == "Healthy" and m["status"].get("stableVersion") == v2,
        timeout=300, extra=[(MV, v2)],
    )  # fmt: skip
    states = f"rollout states seen: {trace}"
    assert ("Progressing", v2, ANALYSIS_STEP, 25, v1) in trace, f"{where}: never seen analysing at 25%: {states}"
    assert ("Paused", v2, PAUSE_STEP, 50, v1) in trace, f"{where}: never seen paused at 50%: {states}"
    steps = [o[2] for o in trace if o[1] == v2 and isinstance(o[2], int)]
    assert steps == sorted(steps), f"{where}: the steps went backwards: {states}"
    assert canary_seen.get("paused") == (v2, 1), f"{where}: the canary Deployment at 50%: {canary_seen}"
    status = md["status"]
    _expect(where, status, f"\n  {states}", canaryVersion=None, canaryWeight=0, servingVersion=v2)
    latest = (status.get("history") or [{}])[0]
    _expect(f"{where}: status.history[0]", latest, "", version=v2, result="Promoted", fromVersion=v1)
    wait_for(f"{where}: stable Deployment ready with {v2}", lambda: _stable_ready(p, v2), timeout=300, interval=2.0,
             explain=p.explain_rollout())  # fmt: skip
    wait_for(f"{where}: the Service answers with {v2} only", lambda: _served_versions(p) == [v2], timeout=120,
             interval=2.0, explain=p.explain_rollout())  # fmt: skip
    old = kubectl.must_get(MV, v1, p.namespace)["status"]
    assert old.get("stage") == "Archived", f"{where}: {v1} was not archived when {v2} got Production: {old}"
    assert _stage(p, v2) == "Production"
    p.passed.add("canary")


# --- step 4: a failing canary is rolled back ---------------------------------------------------


def _stable_pods(p: Pipeline) -> dict[str, bool]:
    pods = p.kubectl.list_items("pods", p.namespace, f"modelops.io/deployment={p.deployment},modelops.io/role=stable")
    return {
        pod["metadata"]["uid"]: all(s.get("ready") for s in pod.get("status", {}).get("containerStatuses") or [])
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
    }


@pytest.mark.timeout(600)
def test_step4_a_failing_canary_is_rolled_back(pipeline: Pipeline) -> None:
    p = pipeline
    p.require("canary")
    kubectl = p.kubectl
    v2, v3 = p.version(1), p.version(2)
    where = f"step 4 (rollback) of ModelDeployment {p.namespace}/{p.deployment}"
    pods_before = _stable_pods(p)
    assert len(pods_before) == REPLICAS, f"{where}: stable pods {pods_before}"
    assert all(pods_before.values()), f"{where}: stable pods not all ready: {pods_before}"

    kubectl.patch(MD, p.deployment, p.namespace, {"spec": {"analysis": FAILING_ANALYSIS}})
    _observe(p, f"{where}: the new analysis seen while Healthy",
             lambda m: current(m) and m["status"].get("phase") == "Healthy", timeout=60)  # fmt: skip

    admin = p.kubeconfig_for("admin")
    _ok(p.plugin(admin, "promote", v3, "--stage", "Production"), f"{where}: kubectl modelops promote {v3}")
    token = kubectl.run("create", "token", p.approver_sa, "-n", p.namespace, "--duration", "1h").stdout.strip()
    _ok(p.plugin(p.kubeconfig_for("approver", token), "approve", v3), f"{where}: kubectl modelops approve {v3}")
    md, trace, _ = _observe(
        p, f"{where}: the canary of {v3} rolled back",
        lambda m: m["status"].get("phase") == "RolledBack" and m["status"].get("failedVersion") == v3,
        timeout=240, extra=[(MV, v3)],
    )  # fmt: skip
    status = md["status"]
    context = f"\n{p.explain_rollout([(MV, v3)])()}\n  rollout states seen: {trace}"
    _expect(where, status, context, stableVersion=v2, servingVersion=v2, desiredVersion=v3, canaryVersion=None,
            canaryWeight=0)  # fmt: skip
    _expect_condition(where, md, "Stalled", "True", "RolledBack", context)
    _expect_condition(where, md, "Ready", "False", "RolledBack", context)
    _expect_condition(where, md, "Degraded", "True", "AnalysisFailed", context)
    latest = (status.get("history") or [{}])[0]
    _expect(f"{where}: status.history[0]", latest, context, version=v3, result="RolledBack", fromVersion=v2)
    failed = [r for r in status.get("analysis") or [] if r.get("phase") != "Successful"]
    assert failed, f"{where}: status.analysis shows no failing check{context}"

    rejected = wait_for(
        f"{where}: ModelVersion {v3} status.rejected",
        lambda: (kubectl.must_get(MV, v3, p.namespace).get("status") or {}).get("rejected"),
        timeout=60, explain=p.explain((MV, v3)),
    )  # fmt: skip
    assert rejected.get("deployment") == f"{p.namespace}/{p.deployment}", f"{where}: rejected {rejected}"
    assert rejected.get("metric") in CHECK_NAMES, f"{where}: rejected names no check of the analysis: {rejected}"
    assert rejected.get("at"), f"{where}: rejected has no time: {rejected}"
    history = _ok(p.plugin(admin, "history", v3), f"{where}: kubectl modelops history {v3}")
    assert "rejection" in history, f"{where}: kubectl modelops history shows no rejection:\n{history}"

    # The stable is untouched: same Deployment version, same pods, all ready; the canary is at zero.
    wait_for(
        f"{where}: the canary Deployment scaled to 0",
        lambda: (kubectl.get("deployment", f"{p.deployment}-canary", p.namespace) or {}).get("spec", {})
        .get("replicas") == 0,
        timeout=60, explain=p.explain_rollout(),
    )  # fmt: skip
    assert _stable_ready(p, v2) is not None, f"{where}: the stable Deployment changed{context}"
    assert _stable_pods(p) == pods_before, f"{where}: the stable pods changed: {pods_before} → {_stable_pods(p)}"
    assert _served_versions(p) == [v2], f"{where}: the Service does not serve {v2} only"
    p.passed.add("rollback")


# --- step 5: drift -------------------------------------------------------------------------------


def drift_policy(p: Pipeline, url: str) -> JsonDict:
    return {
        "apiVersion": API,
        "kind": "DriftPolicy",
        "metadata": {
            "name": p.policy,
            "namespace": p.namespace,
            "labels": {"app.kubernetes.io/part-of": "modelops-e2e"},
        },
        "spec": {
            "deployment": p.deployment,
            "method": "psi",
            "threshold": 0.2,
            "window": "10m",
            "interval": "10s",
            "minSamples": 200,
            "prometheus": {"address": url},
            "actions": {"alert": {"enabled": True, "for": "1m"}, "retrain": {"enabled": False}},
        },
    }


@pytest.mark.timeout(900)
def test_step5_drift_on_shifted_traffic(pipeline: Pipeline, request: pytest.FixtureRequest) -> None:
    p = pipeline
    p.require("canary")
    prometheus: Prometheus = request.getfixturevalue("prometheus")  # only now: it may apply and wait
    kubectl = p.kubectl
    serving = kubectl.must_get(MD, p.deployment, p.namespace)["status"].get("servingVersion")
    assert serving, f"step 5 (drift): ModelDeployment {p.namespace}/{p.deployment} serves nothing"
    where = f"step 5 (drift) of DriftPolicy {p.namespace}/{p.policy}"
    explain = p.explain((DP, p.policy))
    kubectl.create(drift_policy(p, prometheus.url))
    p.created.append((DP, p.policy))
    wait_for(
        f"{where}: watching the serving version {serving}",
        lambda: _if(kubectl.get(DP, p.policy, p.namespace),
                    lambda d: current(d) and d["status"].get("modelVersion") == serving),
        timeout=120, explain=explain,
    )  # fmt: skip

    # Prometheus has scraped the serving pods (their histograms start at zero), so all traffic counts.
    series = f'modelops_feature_bucket{{namespace="{p.namespace}",model="{p.model}",version="{serving}"}}'
    if prometheus.query_path("vector(1)") is not None:
        wait_for(
            f"{where}: Prometheus ({prometheus.source}) scraping the feature histograms of {serving}",
            lambda: bool(prometheus.query(kubectl, f"count({series})")),
            timeout=180, interval=3.0, explain=explain,
        )  # fmt: skip

    version = kubectl.must_get(MV, serving, p.namespace)
    names = [str(i["name"]) for i in version["spec"]["signature"]["inputs"]]
    shifted = [n for n in ("mean radius", "mean texture") if n in names] or names[:2]
    control = next((n for n in ("mean smoothness", "mean symmetry") if n in names and n not in shifted), names[-1])
    _, rows = _feature_rows(version, shifted)
    sent = {"rounds": 0, "at": -1e9}

    def drifted() -> JsonDict | None:
        # Another round of shifted traffic every 20 s (a few evaluations at interval 10s) until drift shows.
        if time.monotonic() - sent["at"] >= 20:
            for start in range(0, len(rows), 200):
                _infer(p, rows[start : start + 200])
            sent["rounds"] += 1
            sent["at"] = time.monotonic()
        return _if(kubectl.get(DP, p.policy, p.namespace), lambda d: d["status"].get("drifted") is True)

    policy = wait_for(
        f"{where}: status.drifted true after traffic with {shifted} scaled x{SHIFT_FACTOR:g}",
        drifted, timeout=480, interval=2.0, explain=lambda: f"{explain()}\n  traffic rounds sent: {sent['rounds']}",
    )  # fmt: skip
    status = policy["status"]
    by_name = {f["name"]: f for f in status.get("features") or []}
    context = f"\n{explain()}"
    for name in shifted:
        assert by_name.get(name, {}).get("drifted") is True, f"{where}: {name} not drifted{context}"
        assert (by_name[name].get("score") or 0) >= 0.2, f"{where}: {name} scored below the threshold{context}"
    assert by_name.get(control, {}).get("drifted") is False, f"{where}: the unshifted {control} drifted{context}"
    assert status.get("lastEvaluation"), f"{where}: no lastEvaluation{context}"
    assert (status.get("samples") or 0) >= 200, f"{where}: fewer samples than minSamples{context}"
    _expect(f"{where}: status", status, context, modelVersion=serving, drifted=True)
    _expect_condition(where, policy, "DriftDetected", "True", "DriftDetected", context)
    p.passed.add("drift")
