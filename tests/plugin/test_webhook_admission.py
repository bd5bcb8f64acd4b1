"""approve through real admission webhooks (HTTPS, AdmissionReview) called by the emulator.

The webhooks here stand in for the operator's: a mutating one records the approval from the
review's ``userInfo``; a validating one denies users without the approve verb. What is under
test is the plugin: what it sends, and what it shows of the server's answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import helmchart
from emulator.webhookpeer import Review, WebhookPeer, json_patch
from kubeemu import Emulator
from modelops.plugin import cli
from plugin.pluginkit import API, NS, Seeded

APPROVERS = {"carol"}


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[WebhookPeer]:
    with WebhookPeer(tmp_path / "certs") as server:
        yield server


def record_approval(review: Review) -> dict[str, Any]:
    annotations = review["object"]["metadata"].get("annotations") or {}
    old = (review.get("oldObject") or {}).get("metadata", {}).get("annotations") or {}
    stage = annotations.get("modelops.io/approve")
    if not stage or stage == old.get("modelops.io/approve"):
        return {"allowed": True}
    user = review["userInfo"]
    record = {"stage": stage, "user": user["username"], "groups": user.get("groups"), "at": "2026-11-25T12:00:00Z"}
    return json_patch(
        {"op": "add", "path": "/metadata/annotations/modelops.io~1approvals", "value": json.dumps([record])}
    )


def check_approver(review: Review) -> dict[str, Any]:
    annotations = review["object"]["metadata"].get("annotations") or {}
    if "modelops.io/approve" in annotations and review["userInfo"]["username"] not in APPROVERS:
        user = review["userInfo"]["username"]
        message = f'user "{user}" cannot approve modelversions.modelops.io in namespace "{NS}": needs the verb approve'
        return {"allowed": False, "status": {"code": 403, "reason": "Forbidden", "message": message}}
    return {"allowed": True}


def webhook(name: str, config: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "clientConfig": config,
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "failurePolicy": "Fail",
        "rules": [
            {
                "operations": ["UPDATE"],
                "apiGroups": ["modelops.io"],
                "apiVersions": ["*"],
                "resources": ["modelversions"],
            }
        ],
    }


def test_approve_through_real_webhooks(
    seeded: Seeded, emulator: Emulator, peer: WebhookPeer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    peer.handlers["/mutate"] = record_approval
    peer.handlers["/validate"] = check_approver
    admission = "admissionregistration.k8s.io/v1"
    kube = seeded.kube
    kube.create(
        {
            "apiVersion": admission,
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "m"},
            "webhooks": [webhook("mutate-modelversion.modelops.io", peer.client_config("/mutate"))],
        }
    )
    kube.create(
        {
            "apiVersion": admission,
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "v"},
            "webhooks": [webhook("validate-modelversion.modelops.io", peer.client_config("/validate"))],
        }
    )
    emulator.add_user("tok-carol", "carol", groups=["ml-reviewers"])
    emulator.add_user("tok-mallory", "mallory")
    # mallory edits (the chart's modelops-editor role) but may not approve; the webhook says why.
    helmchart.bind_user_role(kube, "modelops-editor", ["mallory"], NS)
    helmchart.bind_user_role(kube, "modelops-approver", [], NS, groups=["ml-reviewers"])
    carol = emulator.write_kubeconfig(tmp_path / "carol", token="tok-carol")
    mallory = emulator.write_kubeconfig(tmp_path / "mallory", token="tok-mallory")

    assert cli.main(["--kubeconfig", str(mallory), "-n", NS, "approve", "iris-v3"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (
        "error: the API server denied the approval of iris-v3 for Production (403 Forbidden): "
        'admission webhook "validate-modelversion.modelops.io" denied the request: user "mallory" cannot approve '
        'modelversions.modelops.io in namespace "ml": needs the verb approve'
    )
    assert "modelops-approver ClusterRole" in err[1]

    assert cli.main(["--kubeconfig", str(carol), "-n", NS, "approve", "iris-v3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "modelversion iris-v3: approval of Production requested",
        "  recorded: Production approved by carol at 2026-11-25T12:00:00Z",
    ]
    stored = kube.get(API, "ModelVersion", NS, "iris-v3")["metadata"]["annotations"]
    assert json.loads(stored["modelops.io/approvals"])[0]["user"] == "carol"
    # what the plugin sent: the approve annotation and nothing naming a user
    (review,) = [r for r in peer.reviews("/mutate") if r["userInfo"]["username"] == "carol"]
    sent = review["object"]["metadata"]["annotations"]
    assert sent == {"modelops.io/approve": "Production"}
    assert review["object"]["spec"] == review["oldObject"]["spec"]
