"""manifests/install/ is the chart rendered as plain YAML, and stays so (tests/packaging/render_install.py)."""

from __future__ import annotations

from pathlib import Path

import render_install
import yaml
from chartkit import REPO

from k8sschemas import problems


def test_checked_in_install_matches_a_fresh_render_byte_for_byte() -> None:
    assert render_install.differences() == [], "run: python tests/packaging/render_install.py"


def test_check_mode_reports_a_hand_edit(tmp_path: Path) -> None:
    render_install.write(tmp_path)
    assert render_install.main(["--check", "--output", str(tmp_path)]) == 0
    edited = tmp_path / "modelops-operator.yaml"
    edited.write_text(edited.read_text().replace("replicas: 2", "replicas: 3"))
    (tmp_path / "extra.yaml").write_text("{}\n")
    assert render_install.differences(tmp_path) == [
        "extra.yaml: not rendered from the chart",
        "modelops-operator.yaml: differs from a fresh render",
    ]
    assert render_install.main(["--check", "--output", str(tmp_path)]) == 1


def test_kustomization_lists_every_file_and_the_crds_are_the_generated_ones() -> None:
    install = REPO / "manifests" / "install"
    kustomization = yaml.safe_load((install / "kustomization.yaml").read_text())
    files = sorted(p.relative_to(install).as_posix() for p in install.rglob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == files
    assert "namespace" not in kustomization, "cluster-scoped objects keep their own namespaces"
    for crd in (REPO / "crds").glob("*.yaml"):
        assert (install / "crds" / crd.name).read_bytes() == crd.read_bytes()


def test_plain_install_is_complete_and_valid() -> None:
    install = REPO / "manifests" / "install"
    docs = [d for d in yaml.safe_load_all((install / "modelops-operator.yaml").read_text()) if d]
    kinds = [d["kind"] for d in docs]
    assert yaml.safe_load((install / "namespace.yaml").read_text())["metadata"]["name"] == "modelops-system"
    assert {d["metadata"].get("namespace") for d in docs if "namespace" in d["metadata"]} == {"modelops-system"}
    assert kinds.index("ServiceAccount") < kinds.index("ClusterRoleBinding") < kinds.index("Deployment")
    assert kinds.index("Certificate") < kinds.index("Deployment")
    # The webhooks are registered last, once what answers them is there.
    assert kinds.index("Deployment") < kinds.index("MutatingWebhookConfiguration")
    assert "Secret" not in kinds, "no private key in a checked-in file: cert-manager makes it"
    assert all(d["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kustomize" for d in docs)
    builtin = [
        d for d in docs if not d["apiVersion"].startswith(("cert-manager.io/", "monitoring.coreos.com/", "kopf.dev/"))
    ]
    assert [p for d in builtin for p in problems(d)] == []
