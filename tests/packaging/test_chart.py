"""The Helm chart, rendered offline across the value combinations platform teams install with.

Lint, strict schema validation of every object for the oldest and newest supported Kubernetes,
the CRDs byte for byte, the operator's security and HA settings, the webhooks against
docs/governance.md, least-privilege RBAC, the policy ConfigMap, and values.schema.json.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any

import helm_python
import jsonschema
import pytest
import yaml
from chartkit import CHART_DIR, COMBOS, NAMESPACE, REPO, Objects, Render, find, one
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from k8sschemas import SUPPORTED, openapi_to_jsonschema, problems
from modelops.controller import quality, run
from modelops.logic import policy as policy_logic
from modelops.logic import rules


def container(objects: Objects) -> dict[str, Any]:
    pod = one(objects, "Deployment", "modelops-operator")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["operator"]
    return pod["containers"][0]


def env_of(objects: Objects) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(objects)["env"]}


# ---------------------------------------------------------------------------------------------
# Lint and schema validation of every object


@pytest.mark.parametrize("kube", SUPPORTED)
@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_lint_is_clean(combo: str, kube: str) -> None:
    report = helm_python.lint(CHART_DIR, COMBOS[combo], strict=True, namespace=NAMESPACE, kube_version=f"v{kube}")
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert findings == [], report


# Kinds that come from CRDs kubernetes-validate does not know. Kopf's peerings are checked
# against the chart's own CRD; cert-manager and Prometheus Operator kinds against the subset of
# their published API the chart uses (below): closed objects, so a misspelt field fails.
def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required), "additionalProperties": False}


_STR = {"type": "string"}
_LABELS = {"type": "object", "additionalProperties": _STR}
_META = _closed({"name": _STR, "namespace": _STR, "labels": _LABELS, "annotations": _LABELS}, ("name",))


def _crd_object(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _META, "spec": spec},
        ("apiVersion", "kind", "metadata", "spec"),
    )


SUBSET_SCHEMAS: dict[str, dict[str, Any]] = {
    "ServiceMonitor": _crd_object(
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
        _closed(
            {
                "selector": _closed({"matchLabels": _LABELS}),
                "namespaceSelector": _closed(
                    {"matchNames": {"type": "array", "items": _STR}, "any": {"type": "boolean"}}
                ),
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": _closed(
                        {"port": _STR, "path": _STR, "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
                         "honorLabels": {"type": "boolean"}},
                        ("port",),
                    ),
                },
            },
            ("selector", "endpoints"),
        ),
    ),
    "Issuer": _crd_object("cert-manager.io/v1", "Issuer", _closed({"selfSigned": _closed({})}, ("selfSigned",))),
    "Certificate": _crd_object(
        "cert-manager.io/v1",
        "Certificate",
        _closed(
            {
                "secretName": _STR,
                "commonName": _STR,
                "dnsNames": {"type": "array", "items": _STR, "minItems": 1},
                "duration": _STR,
                "renewBefore": _STR,
                "privateKey": _closed(
                    {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    }
                ),
                "issuerRef": _closed(
                    {
                        "name": _STR,
                        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
                        "group": {"const": "cert-manager.io"},
                    },
                    ("name",),
                ),
            },
            ("secretName", "issuerRef", "dnsNames"),
        ),
    ),
}


def _peering_schemas() -> dict[str, dict[str, Any]]:
    crds = list(yaml.safe_load_all((CHART_DIR / "crds" / "kopf.dev_peerings.yaml").read_text()))
    return {
        crd["spec"]["names"]["kind"]: openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
        for crd in crds
    }


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_every_object_validates_strictly_on_oldest_and_newest_kubernetes(render: Render, combo: str) -> None:
    objects = render(COMBOS[combo])
    by_crd = {**SUBSET_SCHEMAS, **_peering_schemas()}
    found: list[str] = []
    for obj in objects:
        if obj["kind"] in by_crd:
            for error in jsonschema.Draft7Validator(by_crd[obj["kind"]]).iter_errors(obj):
                found.append(f"{obj['kind']} {obj['metadata']['name']}: {error.json_path}: {error.message}")
        else:
            found += problems(obj)
    assert found == []
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "ServiceAccount",
        "Service",
        "ConfigMap",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "ClusterRole",
        "ClusterRoleBinding",
        "PodDisruptionBudget",
    }


def test_a_misspelt_field_fails_the_crd_subset_schemas() -> None:
    """The subset schemas are closed, so they would catch a typo in the templates."""
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "x"},
        "spec": {"selector": {}, "endpoints": [{"port": "metrics", "intervall": "30s"}]},
    }
    assert list(jsonschema.Draft7Validator(SUBSET_SCHEMAS["ServiceMonitor"]).iter_errors(monitor))


# ---------------------------------------------------------------------------------------------
# CRDs


def test_chart_crds_are_the_generated_ones_byte_for_byte() -> None:
    generated = sorted(p.name for p in (REPO / "crds").glob("*.yaml"))
    assert generated, "crds/ is empty"
    for name in generated:
        assert (CHART_DIR / "crds" / name).read_bytes() == (REPO / "crds" / name).read_bytes(), name
    extra = sorted(p.name for p in (CHART_DIR / "crds").glob("*.yaml") if p.name not in generated)
    assert extra == ["kopf.dev_peerings.yaml"], "the chart's crds/ holds only the generated CRDs and Kopf's peerings"


def test_chart_ships_every_crd_helm_installs(chart: helm_python.Chart) -> None:
    names = {yaml.safe_load(crd["data"])["metadata"]["name"] for crd in chart.crds if "modelops.io" in crd["filename"]}
    names |= {
        doc["metadata"]["name"]
        for crd in chart.crds
        if "kopf" in crd["filename"]
        for doc in yaml.safe_load_all(crd["data"])
    }
    assert names == {
        "trainingruns.modelops.io",
        "modelversions.modelops.io",
        "modeldeployments.modelops.io",
        "driftpolicies.modelops.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }


def test_kopf_peering_crds_validate_strictly() -> None:
    for crd in yaml.safe_load_all((CHART_DIR / "crds" / "kopf.dev_peerings.yaml").read_text()):
        assert problems(crd) == []


# ---------------------------------------------------------------------------------------------
# The operator Deployment


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_operator_runs_locked_down(render: Render, combo: str) -> None:
    objects = render(COMBOS[combo])
    pod = one(objects, "Deployment", "modelops-operator")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in pod
    assert "hostPID" not in pod
    ctx = container(objects)["securityContext"]
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in ctx
    mounts = {m["mountPath"]: m["name"] for m in container(objects)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert all(m.get("readOnly") for m in container(objects)["volumeMounts"] if m["mountPath"] != "/tmp")
    assert container(objects)["resources"]["requests"]
    assert container(objects)["resources"]["limits"]["memory"]


@pytest.mark.parametrize(("run_as", "expected"), [(None, {}), (1000680000, {"runAsUser": 1000680000,
                                                  "runAsGroup": 1000680000, "fsGroup": 1000680000})])  # fmt: skip
def test_the_user_id_can_be_left_to_the_platform(render: Render, run_as: int | None, expected: dict[str, int]) -> None:
    """OpenShift's restricted policy refuses user ids outside the namespace's range: runAsUser=null leaves
    the operator's pod and the pods it writes (MODELOPS_RUN_AS_USER) to the policy's choice; a large id
    renders as an integer, not as Helm's 1.00068e+09."""
    objects = render({"runAsUser": run_as})
    context = one(objects, "Deployment", "modelops-operator")["spec"]["template"]["spec"]["securityContext"]
    assert {k: v for k, v in context.items() if k in ("runAsUser", "runAsGroup", "fsGroup")} == expected
    assert context["runAsNonRoot"] is True
    assert env_of(objects)["MODELOPS_RUN_AS_USER"] == ("" if run_as is None else str(run_as))


def test_two_replicas_one_active_through_peering(render: Render) -> None:
    objects = render()
    assert one(objects, "Deployment")["spec"]["replicas"] == 2
    args = container(objects)["args"]
    assert args[0] == "operator"
    assert "--standalone" not in args
    assert "--all-namespaces" in args
    assert one(objects, "ClusterKopfPeering")["metadata"]["name"] == "modelops-operator"
    assert one(objects, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    anti = one(objects, "Deployment")["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["topologyKey"]


def test_one_replica_has_no_disruption_budget(render: Render) -> None:
    assert find(render({"replicaCount": 1}), "PodDisruptionBudget") == []


def test_probes_flags_and_mounts_agree(render: Render) -> None:
    objects = render()
    main = container(objects)
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"health": 8080, "metrics": 8081, "webhook": 9443}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert main["readinessProbe"]["tcpSocket"] == {"port": "webhook"}
    args = main["args"]
    assert "--liveness=http://0.0.0.0:8080/healthz" in args
    assert "--metrics-port=8081" in args
    assert "--webhook-port=9443" in args
    cert_dir = next(a.split("=", 1)[1] for a in args if a.startswith("--webhook-cert-dir="))
    policy_file = next(a.split("=", 1)[1] for a in args if a.startswith("--policy="))
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main["volumeMounts"]}
    tls = mounts[cert_dir]["secret"]
    assert tls["secretName"] == "modelops-operator-webhook-tls"
    assert {i["path"] for i in tls["items"]} == {"tls.crt", "tls.key"}
    policy_dir, _, policy_name = policy_file.rpartition("/")
    assert mounts[policy_dir]["configMap"]["name"] == "modelops-operator-policy"
    assert policy_name in one(objects, "ConfigMap", "modelops-operator-policy")["data"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"], "mounted keys readable"


def test_environment_follows_the_operator_configuration_contract(render: Render) -> None:
    env = env_of(render())
    assert env["MODELOPS_IMAGE"] == "ghcr.io/modelops/modelops-operator:0.1.0"
    assert env["MODELOPS_ARTIFACT_STORE"] == ""
    assert env["MODELOPS_PROMETHEUS_URL"] == ""
    assert env["MODELOPS_RULE_LABELS"] == ""
    assert env["MODELOPS_POLICY_FILE"] == "/etc/modelops/policy/policy.yaml"
    assert env["MODELOPS_QUALITY_SECONDS"] == "60"
    assert quality.interval_seconds() == 60.0  # the chart's default is the operator's own
    assert env_of(render({"feedback": {"qualityStatusSeconds": 15}}))["MODELOPS_QUALITY_SECONDS"] == "15"
    env = env_of(render(COMBOS["everything"] | {"image": {"repository": "registry.local/mo", "tag": "dev"}}))
    assert env["MODELOPS_IMAGE"] == "registry.local/mo:dev"
    assert env["MODELOPS_ARTIFACT_STORE"] == "pvc://modelops-artifacts"
    assert env["MODELOPS_PROMETHEUS_URL"] == "http://prometheus-operated.monitoring.svc:9090"
    assert env["MODELOPS_RULE_LABELS"] == "release=kube-prometheus-stack,team=ml"


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_operator_arguments_parse_with_the_real_command_line(render: Render, combo: str) -> None:
    objects = render(COMBOS[combo])
    args = container(objects)["args"]
    assert args[0] == "operator"
    parsed = run._parser().parse_args(args[1:])
    assert parsed.namespace == COMBOS[combo].get("watchNamespaces", [])
    assert parsed.all_namespaces is not bool(parsed.namespace)
    assert parsed.standalone is False
    assert parsed.webhook_port == 9443
    assert parsed.metrics_port == 8081
    assert parsed.policy == "/etc/modelops/policy/policy.yaml"
    assert parsed.liveness == "http://0.0.0.0:8080/healthz"
    env = env_of(objects)
    assert rules.rule_labels(env["MODELOPS_RULE_LABELS"]) == COMBOS[combo].get("ruleLabels", {})


def test_service_exposes_webhooks_on_443_and_metrics(render: Render) -> None:
    objects = render()
    service = one(objects, "Service", "modelops-operator")
    ports = {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {"webhook": (443, "webhook"), "metrics": (8081, "metrics")}
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()


def test_only_the_api_server_reaches_the_webhooks(render: Render) -> None:
    objects = render(COMBOS["network-policy"])
    policy = one(objects, "NetworkPolicy", "modelops-operator")
    deployment = one(objects, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = {rule["ports"][0]["port"]: rule for rule in policy["spec"]["ingress"]}
    container_ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert set(rules) == container_ports == {"webhook", "metrics", "health"}  # nothing else gets in
    assert rules["webhook"]["from"] == [
        {"ipBlock": {"cidr": "172.18.0.0/16"}},
        {"ipBlock": {"cidr": "fd00:10::/64"}},
        COMBOS["network-policy"]["networkPolicy"]["webhookFrom"][0],
    ]
    assert rules["metrics"]["from"] == COMBOS["network-policy"]["networkPolicy"]["metricsFrom"]
    assert "from" not in rules["health"]  # the kubelet's probes
    assert find(render(COMBOS["network-policy-off"]), "NetworkPolicy") == []


def test_without_the_api_servers_address_the_webhook_port_stays_open_and_the_notes_say_so(
    chart: helm_python.Chart, render: Render
) -> None:
    policy = one(render(), "NetworkPolicy", "modelops-operator")
    rules = {rule["ports"][0]["port"]: rule for rule in policy["spec"]["ingress"]}
    assert "from" not in rules["webhook"]
    notes_file = "modelops-operator/templates/NOTES.txt"
    notes = chart.render({}, name="modelops", namespace=NAMESPACE, is_install=True)[notes_file]
    assert "networkPolicy.apiServerCIDRs is empty, so the admission webhooks stay reachable" in notes
    configured = chart.render(COMBOS["network-policy"], name="modelops", namespace=NAMESPACE, is_install=True)
    assert "apiServerCIDRs is empty" not in configured[notes_file]


def test_service_monitor_follows_monitoring_enabled(render: Render) -> None:
    monitor = one(render(), "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["honorLabels"] is True  # the rollout series' namespace is the deployment's
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert find(render(COMBOS["monitoring-off"]), "ServiceMonitor") == []
    labelled = one(render({"monitoring": {"labels": {"release": "kps"}}}), "ServiceMonitor")
    assert labelled["metadata"]["labels"]["release"] == "kps"


# ---------------------------------------------------------------------------------------------
# Admission webhooks: what docs/governance.md says, with a certificate the API server trusts


def _governance_table() -> dict[str, tuple[str, str, list[str]]]:
    """path → (configuration, resource, operations), read from docs/governance.md."""
    text = (REPO / "docs" / "governance.md").read_text()
    rows = re.findall(r"^\| `(/[\w-]+)` \| (\w+) \| `([\w/]+)` \| ([A-Z, ]+) \|$", text, re.MULTILINE)
    assert len(rows) >= 4, "the webhook table of docs/governance.md changed shape"
    return {path: (config, resource, [op.strip() for op in ops.split(",")]) for path, config, resource, ops in rows}


def _webhooks(objects: Objects) -> dict[str, tuple[str, dict[str, Any]]]:
    found = {}
    for config in ("Mutating", "Validating"):
        for hook in one(objects, f"{config}WebhookConfiguration")["webhooks"]:
            found[hook["clientConfig"]["service"]["path"]] = (config, hook)
    return found


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_webhooks_match_the_governance_contract(render: Render, combo: str) -> None:
    objects = render(COMBOS[combo])
    hooks = _webhooks(objects)
    table = _governance_table()
    assert set(hooks) == set(table)
    for path, (config, resource, operations) in table.items():
        kind, hook = hooks[path]
        assert kind == config, path
        assert hook["rules"] == [
            {
                "apiGroups": ["modelops.io"],
                "apiVersions": ["v1alpha1"],
                "resources": [resource],
                "operations": operations,
                "scope": "Namespaced",
            }
        ], path
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["timeoutSeconds"] == 10
        assert hook["admissionReviewVersions"] == ["v1"]
        assert hook["clientConfig"]["service"] == {
            "name": "modelops-operator",
            "namespace": NAMESPACE,
            "path": path,
            "port": 443,
        }
    names = [hook["name"] for _, hook in hooks.values()]
    assert len(set(names)) == len(names)


def test_namespaced_mode_scopes_webhooks_to_the_watched_namespaces(render: Render) -> None:
    for _, hook in _webhooks(render(COMBOS["namespaced"])).values():
        assert hook["namespaceSelector"] == {
            "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["ml", "ml-prod"]}]
        }
    for _, hook in _webhooks(render()).values():
        assert "namespaceSelector" not in hook


def test_self_signed_certificate_is_trusted_for_the_service_name(render: Render) -> None:
    objects = render()
    secret = one(objects, "Secret", "modelops-operator-webhook-tls")
    assert secret["type"] == "kubernetes.io/tls"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    for _, hook in _webhooks(objects).values():
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == data["ca.crt"]
    ca = x509.load_pem_x509_certificate(data["ca.crt"])
    cert = x509.load_pem_x509_certificate(data["tls.crt"])
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    public = ca.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    public.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"modelops-operator.{NAMESPACE}.svc" in names
    assert cert.not_valid_after_utc > datetime.now(UTC).replace(year=datetime.now(UTC).year + 5)
    assert b"PRIVATE KEY" in data["tls.key"]


def test_cert_manager_makes_the_certificate_and_injects_the_ca(render: Render) -> None:
    objects = render(COMBOS["cert-manager"])
    assert find(objects, "Secret") == [], "cert-manager writes the Secret"
    certificate = one(objects, "Certificate")
    issuer = one(objects, "Issuer")
    assert "selfSigned" in issuer["spec"]
    assert certificate["spec"]["secretName"] == "modelops-operator-webhook-tls"
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert f"modelops-operator.{NAMESPACE}.svc" in certificate["spec"]["dnsNames"]
    for config in ("Mutating", "Validating"):
        obj = one(objects, f"{config}WebhookConfiguration")
        annotation = obj["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert annotation == f"{NAMESPACE}/{certificate['metadata']['name']}"
        assert all("caBundle" not in hook["clientConfig"] for hook in obj["webhooks"])
    objects = render(COMBOS["cert-manager-issuer"])
    assert find(objects, "Issuer") == []
    assert one(objects, "Certificate")["spec"]["issuerRef"] == {
        "name": "corp-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }


# ---------------------------------------------------------------------------------------------
# RBAC

# What the operator does (grep operator/modelops/controller, and the children other kinds add).
NEEDED: list[tuple[str, str, str]] = [
    *[
        ("modelops.io", kind, verb)
        for kind in ("trainingruns", "modelversions", "modeldeployments", "driftpolicies")
        for verb in ("get", "list", "watch", "create", "patch")
    ],
    *[
        ("modelops.io", f"{kind}/{sub}", verb)
        for kind in ("trainingruns", "modelversions", "modeldeployments", "driftpolicies")
        for sub, verb in (("status", "patch"), ("status", "update"), ("finalizers", "update"))
    ],
    *[
        (group, resource, verb)
        for group, resource in (
            ("batch", "jobs"),
            ("", "configmaps"),
            ("", "services"),
            ("apps", "deployments"),
            ("autoscaling", "horizontalpodautoscalers"),
            ("policy", "poddisruptionbudgets"),
            ("monitoring.coreos.com", "servicemonitors"),
            ("monitoring.coreos.com", "prometheusrules"),
            ("gateway.networking.k8s.io", "httproutes"),
        )
        for verb in ("get", "list", "watch", "create", "patch", "delete")
    ],
    ("", "secrets", "create"),  # the feedback keys; get/patch are granted on that Secret by name only
    ("", "secrets", "get"),
    ("", "secrets", "patch"),
    ("", "pods", "get"),
    ("", "pods", "list"),
    ("", "pods", "watch"),
    ("", "events", "create"),
    ("events.k8s.io", "events", "create"),
]
NEEDED_CLUSTER: list[tuple[str, str, str]] = [
    ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "get"),
    ("authorization.k8s.io", "subjectaccessreviews", "create"),
]


def assert_secrets_only_the_feedback_keys(rules: list[dict[str, Any]]) -> None:
    """Secrets: create (RBAC cannot name what does not exist yet), and the feedback keys' Secret by name; no list."""
    for rule in rules:
        if "secrets" not in rule["resources"]:
            continue
        assert rule["resources"] == ["secrets"], rule
        if rule.get("resourceNames"):
            assert rule["resourceNames"] == ["modelops-feedback-keys"], rule
            assert set(rule["verbs"]) <= {"get", "update", "patch"}, rule
        else:
            assert rule["verbs"] == ["create"], rule


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


@pytest.mark.parametrize("combo", sorted(COMBOS))
def test_no_rbac_rule_uses_a_wildcard(render: Render, combo: str) -> None:
    for obj in render(COMBOS[combo]):
        if obj["kind"] in ("ClusterRole", "Role"):
            for rule in obj["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule.get(field, []), f"{obj['kind']} {obj['metadata']['name']}: {rule}"
                assert "resourceNames" not in rule or rule["resourceNames"]


def test_cluster_wide_operator_role_covers_what_it_does(render: Render) -> None:
    objects = render()
    role = one(objects, "ClusterRole", "modelops-operator")
    grants = _grants(role["rules"])
    missing = [need for need in [*NEEDED, *NEEDED_CLUSTER] if need not in grants]
    assert missing == []
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in grants
    assert not any(r == "pods/exec" for _, r, _ in grants), "no exec"
    assert_secrets_only_the_feedback_keys(role["rules"])
    assert not any(v in ("escalate", "bind", "impersonate") for _, _, v in grants)
    binding = one(objects, "ClusterRoleBinding", "modelops-operator")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "modelops-operator", "namespace": NAMESPACE}]
    assert find(objects, "Role") == []


def test_namespaced_mode_grants_namespaced_resources_only_in_watched_namespaces(render: Render) -> None:
    objects = render(COMBOS["namespaced"])
    args = container(objects)["args"]
    assert "--namespace=ml" in args
    assert "--namespace=ml-prod" in args
    assert "--all-namespaces" not in args
    roles = find(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["ml", "ml-prod"]
    for role in roles:
        grants = _grants(role["rules"])
        assert [need for need in NEEDED if need not in grants] == []
        assert_secrets_only_the_feedback_keys(role["rules"])
        assert ("kopf.dev", "kopfpeerings", "patch") in grants
        binding = one(
            [b for b in find(objects, "RoleBinding") if b["metadata"]["namespace"] == role["metadata"]["namespace"]],
            "RoleBinding",
        )
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # Only what is cluster-scoped by nature stays in a ClusterRole.
    cluster = one(objects, "ClusterRole", "modelops-operator-cluster")
    assert _grants(cluster["rules"]) >= set(NEEDED_CLUSTER)
    assert {r for _, r, _ in _grants(cluster["rules"])} == {
        "customresourcedefinitions",
        "namespaces",
        "subjectaccessreviews",
    }
    assert find(objects, "ClusterRole", "modelops-operator") == []
    assert sorted(p["metadata"]["namespace"] for p in find(objects, "KopfPeering")) == ["ml", "ml-prod"]
    assert find(objects, "ClusterKopfPeering") == []


def test_people_roles_approver_viewer_editor(render: Render) -> None:
    objects = render()
    approver = one(objects, "ClusterRole", "modelops-approver")
    assert _grants(approver["rules"]) == {
        ("modelops.io", "modelversions", verb) for verb in ("get", "list", "watch", "patch", "approve")
    }
    assert not any(k.startswith("rbac.authorization.k8s.io/aggregate") for k in approver["metadata"]["labels"])
    viewer = one(objects, "ClusterRole", "modelops-viewer")
    editor = one(objects, "ClusterRole", "modelops-editor")
    for role, targets in ((viewer, ("view", "edit", "admin")), (editor, ("edit", "admin"))):
        for target in targets:
            assert role["metadata"]["labels"][f"rbac.authorization.k8s.io/aggregate-to-{target}"] == "true"
    assert {v for _, _, v in _grants(viewer["rules"])} == {"get", "list", "watch"}
    assert "aggregate-to-view" not in str(editor["metadata"]["labels"])
    editor_grants = _grants(editor["rules"])
    assert ("modelops.io", "modelversions", "create") in editor_grants
    assert not any(r.endswith("/status") for _, r, _ in editor_grants), "status belongs to the operator"
    assert not any(v == "approve" for _, _, v in editor_grants), "approving is a separate grant"


# ---------------------------------------------------------------------------------------------
# Governance policy as values


def _policy(objects: Objects) -> policy_logic.Policy:
    text = one(objects, "ConfigMap", "modelops-operator-policy")["data"]["policy.yaml"]
    return policy_logic.parse(yaml.safe_load(text))


def test_default_policy_is_the_documented_default_plus_the_operator(render: Render) -> None:
    policy = _policy(render())
    assert policy.stages == policy_logic.DEFAULT.stages
    assert policy.operator_users == (f"system:serviceaccount:{NAMESPACE}:modelops-operator",)
    assert policy.production_namespace_label == "modelops.io/environment=production"


def test_the_operators_own_image_is_allowed_by_the_workload_rules(render: Render) -> None:
    policy = _policy(render())
    assert policy.workloads.enforce == "Production"
    assert [rule.repository for rule in policy.workloads.images] == ["ghcr.io/modelops/modelops-operator"]
    assert policy.workloads.env_names == policy_logic.DEFAULT.workloads.env_names
    chosen = _policy(render({"image": {"repository": "registry.example/ml/modelops"}, "governance": {"workloads": {
        "images": [{"repository": "ghcr.io/acme/server", "digests": ["sha256:" + "ab" * 32]},
                   {"repository": "registry.example/ml/modelops"}],
        "envSecrets": ["s3-readonly"]}}}))  # fmt: skip
    assert [(r.repository, r.digests) for r in chosen.workloads.images] == [
        ("ghcr.io/acme/server", ("sha256:" + "ab" * 32,)), ("registry.example/ml/modelops", ())]  # no duplicate
    assert chosen.workloads.env_secrets == ("s3-readonly",)


def test_policy_values_reach_the_operator(render: Render) -> None:
    objects = render(
        COMBOS["everything"]
        | {
            "serviceAccount": {"name": "mo"},
            "governance": {
                **COMBOS["everything"]["governance"],
                "operatorUsers": ["system:serviceaccount:modelops-system:mo", "ci-bot"],
            },
        }
    )
    policy = _policy(objects)
    assert policy.stages.production.approvals == 2
    assert policy.stages.production.four_eyes is True, "unset keys keep the chart's defaults"
    assert policy.stages.production.gates[0].threshold == 0.9
    assert policy.trusted_appliers == ("system:serviceaccount:argocd:argocd-application-controller",)
    assert policy.operator_users == ("system:serviceaccount:modelops-system:mo", "ci-bot"), "no duplicate"
    assert one(objects, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "mo"


def test_a_policy_change_rolls_the_operator(render: Render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        return str(one(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/policy"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"governance": {"stages": {"Production": {"approvals": 2}}}})


# ---------------------------------------------------------------------------------------------
# values.schema.json: a wrong value fails with a message naming it


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicaCount": "two"}, "/replicaCount"),
        ({"replicaCount": 0}, "/replicaCount"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"certManger": {"enabled": True}}, "'certManger' not allowed"),
        ({"certManager": {"enabled": "yes"}}, "/certManager/enabled"),
        ({"certManager": {"issuerRef": {"kind": "ClusterIssuer"}}}, "/certManager/issuerRef"),
        ({"monitoring": {"interval": "soon"}}, "/monitoring/interval"),
        ({"webhook": {"timeoutSeconds": 60}}, "/webhook/timeoutSeconds"),
        ({"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url"),
        ({"artifactStore": "/data"}, "/artifactStore"),
        ({"ruleLabels": {"release": 1}}, "/ruleLabels/release"),
        ({"ruleLabels": {"release": "kube prometheus"}}, "/ruleLabels/release"),
        ({"monitoring": {"labels": {"bad key!": "x"}}}, "invalid propertyName 'bad key!'"),
        ({"governance": {"stages": {"Prod": {"approvals": 1}}}}, "'Prod' not allowed"),
        ({"governance": {"stages": {"Production": {"approvals": -1}}}}, "/governance/stages/Production/approvals"),
        (
            {"governance": {"stages": {"Production": {"gates": [{"metric": "f1", "op": "=>", "threshold": 1}]}}}},
            "/governance/stages/Production/gates/0/op",
        ),
        ({"governance": {"workloads": {"enforce": "Sometimes"}}}, "/governance/workloads/enforce"),
        ({"networkPolicy": {"apiServerCIDRs": ["172.18.0.1"]}}, "/networkPolicy/apiServerCIDRs/0"),
        ({"networkPolicy": {"enabled": "yes"}}, "/networkPolicy/enabled"),
        ({"governance": {"workloads": {"images": [{"repository": "GHCR.io/x"}]}}},
         "/governance/workloads/images/0/repository"),
        ({"governance": {"workloads": {"images": [{"repository": "x", "digests": ["latest"]}]}}},
         "/governance/workloads/images/0/digests/0"),
        ({"governance": {"workloads": {"images": [{"digests": []}]}}}, "/governance/workloads/images/0"),
    ],
)
def test_schema_rejects_a_wrong_value_naming_it(chart: helm_python.Chart, values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        chart.render(values, name="modelops", namespace=NAMESPACE, is_install=True)
    assert message in str(caught.value)


def test_schema_accepts_every_combination_and_the_defaults(chart: helm_python.Chart) -> None:
    chart.validate_schema(chart.values)
    for values in COMBOS.values():
        chart.validate_schema(chart.merge_values(values))


def test_notes_tell_the_next_command(chart: helm_python.Chart) -> None:
    notes = chart.render({}, name="modelops", namespace=NAMESPACE, is_install=True)[
        "modelops-operator/templates/NOTES.txt"
    ]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/modelops-operator" in notes
    assert "kubectl apply -f manifests/examples/" in notes
    assert "prometheus.url" in notes
    configured = chart.render(
        {"prometheus": {"url": "http://p:9090"}, "artifactStore": "pvc://a"},
        name="modelops",
        namespace=NAMESPACE,
        is_install=True,
    )["modelops-operator/templates/NOTES.txt"]
    assert "prometheus.url" not in configured
    assert "artifactStore" not in configured
