"""``pods/{name}/log`` as the API server serves it (the text comes from the test's kubelet stand-in).

Given a pod, when nothing was recorded for its container, then GET .../log is a 400 "waiting to
start"; when a kubelet stand-in recorded the container's output, then it is served as text/plain
with ``tailLines`` and ``limitBytes`` applied; a wrong container is a 400; a pod deleted and
created again under the same name starts without a log; only GET is allowed, and discovery lists
``pods/log`` with the verb ``get``.
"""

from __future__ import annotations

import pytest

from kubeemu import Emulator
from kubeemu.client import ApiError, KubeClient

POD = {
    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
    "spec": {"containers": [{"name": "train", "image": "img"}]},
}  # fmt: skip
PATH = "/api/v1/namespaces/default/pods/p/log"


def test_a_recorded_log_is_served_as_text_with_tail_and_limit(emulator: Emulator, kube: KubeClient) -> None:
    kube.create(POD)
    with pytest.raises(ApiError) as waiting:
        kube.request("GET", PATH)
    assert waiting.value.status == 400
    assert "waiting to start" in waiting.value.message
    emulator.set_container_log("default", "p", "train", "one\ntwo\nthree\n")
    whole = kube.request("GET", PATH, params={"container": "train"})
    assert (whole.text, whole.headers["Content-Type"].split(";")[0]) == ("one\ntwo\nthree\n", "text/plain")
    assert kube.request("GET", PATH, params={"tailLines": "2"}).text == "two\nthree\n"
    assert kube.request("GET", PATH, params={"limitBytes": "5"}).text == "one\nt"
    with pytest.raises(ApiError) as wrong:
        kube.request("GET", PATH, params={"container": "other"})
    assert (wrong.value.status, wrong.value.message) == (400, "container other is not valid for pod p")
    with pytest.raises(ApiError) as posted:
        kube.request("POST", PATH, body={})
    assert posted.value.status == 405


def test_a_pod_created_again_under_the_same_name_has_no_log(emulator: Emulator, kube: KubeClient) -> None:
    kube.create(POD)
    emulator.set_container_log("default", "p", "train", "old\n")
    kube.delete("v1", "Pod", "default", "p")
    kube.wait_for("v1", "Pod", "default", "p", lambda o: o is None, timeout=10)
    kube.create(POD)
    with pytest.raises(ApiError) as fresh:
        kube.request("GET", PATH)
    assert fresh.value.status == 400


def test_discovery_lists_pods_log_with_get_only(kube: KubeClient) -> None:
    resources = kube.request("GET", "/api/v1").json()["resources"]
    log = next(r for r in resources if r["name"] == "pods/log")
    assert (log["kind"], log["verbs"]) == ("Pod", ["get"])
    with pytest.raises(ApiError) as missing:
        kube.request("GET", "/api/v1/namespaces/default/pods/absent/log")
    assert missing.value.status == 404
