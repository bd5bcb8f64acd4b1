"""The container kubelet stand-in honours the pod spec, and reports back as the kubelet does.

Each pod runs the image's Python with a small script that reports what it sees from inside
(its user and groups, capabilities, no_new_privs, environment, files, limits) through the
termination message file, so every assertion is about a real container. Fields the stand-in
cannot honour are refused by name instead of ignored.
"""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Callable
from typing import Any

import pytest

from containerkubelet import Node
from kubeemu.client import KubeClient

NAMESPACE = "ml"
Obj = dict[str, Any]

pytestmark = pytest.mark.timeout(300)

INSPECT = textwrap.dedent("""
    import json, os, sys
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return line.split()[1]
    def stat(path):
        st = os.stat(path)
        return {"mode": oct(st.st_mode & 0o7777), "gid": st.st_gid}
    def writable(path):
        try:
            with open(os.path.join(path, "probe"), "w") as handle:
                handle.write("x")
            return True
        except OSError:
            return False
    limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes"
    report = {
        "argv": sys.argv[1:], "uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
        "cap_eff": status("CapEff"), "no_new_privs": status("NoNewPrivs"), "seccomp": status("Seccomp"),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("CFG_", "FROM_", "POD_", "SECRET", "EXPANDED",
                                                                    "KUBERNETES_SERVICE", "MEM_"))},
        "root_writable": writable("/etc"), "tmp_writable": writable("/tmp"), "pvc_writable": writable("/data"),
        "config": open("/config/settings.json").read(), "config_stat": stat("/config/settings.json"),
        "config_files": sorted(os.listdir("/config")),
        "secret": open("/secret/password").read(), "secret_stat": stat("/secret/password"),
        "token": os.path.exists("/var/run/secrets/kubernetes.io/serviceaccount/token"),
        "namespace": open("/var/run/secrets/kubernetes.io/serviceaccount/namespace").read(),
        "memory_limit": int(open(limit).read()) if os.path.exists(limit) else None,
        "hostname": os.uname().nodename,
        "server_workers": __import__("modelops.serve.supervisor").serve.supervisor.default_workers(),
    }
    with open("/dev/termination-log", "w") as handle:
        json.dump(report, handle)
""")


def pod(name: str, container: Obj, **spec: Any) -> Obj:
    metadata = {"name": name, "namespace": NAMESPACE, "labels": {"app": name}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": {"containers": [container], **spec}}


def settled(kube: KubeClient, name: str, check: Callable[[Obj], bool], timeout: float = 120) -> Obj:
    found = kube.wait_for("v1", "Pod", NAMESPACE, name, lambda o: bool(o) and check(o), timeout=timeout)
    assert found is not None
    return found


def phase_in(*phases: str) -> Callable[[Obj], bool]:
    return lambda o: (o.get("status") or {}).get("phase") in phases


def container_status(obj: Obj) -> Obj:
    """The pod's one container status ({} before the kubelet wrote one)."""
    statuses = (obj.get("status") or {}).get("containerStatuses") or [{}]
    [status] = statuses
    return dict(status)


def test_the_pod_spec_as_the_container_sees_it(node: Node, cluster: KubeClient, image: str) -> None:
    cluster.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": NAMESPACE},
                    "data": {"settings.json": '{"depth": 3}', "ignored.txt": "not mounted", "CFG_MODE": "fast",
                             "CFG_LEVEL": "2"}})  # fmt: skip
    cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NAMESPACE},
                    "data": {"password": base64.b64encode(b"s3cret").decode()}})  # fmt: skip
    cluster.create({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data",
                    "namespace": NAMESPACE}, "spec": {"accessModes": ["ReadWriteOnce"]}})  # fmt: skip
    container = {
        "name": "inspect", "image": image, "command": ["python3", "-c", INSPECT],
        "args": ["--depth", "$(FROM_VALUE)", "$$(NOT_EXPANDED)", "$(UNDEFINED)"],
        "envFrom": [{"configMapRef": {"name": "settings"}}, {"secretRef": {"name": "creds"}, "prefix": "FROM_SECRET_"}],
        "env": [
            {"name": "FROM_VALUE", "value": "3"},
            {"name": "EXPANDED", "value": "depth=$(FROM_VALUE) mode=$(CFG_MODE)"},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "SECRET_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
        ],
        "volumeMounts": [{"name": "config", "mountPath": "/config", "readOnly": True},
                         {"name": "secret", "mountPath": "/secret"}, {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "data", "mountPath": "/data"}],
        "resources": {"limits": {"memory": "200Mi", "cpu": "500m"}, "requests": {"cpu": "100m"}},
        "securityContext": {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True},
    }  # fmt: skip
    cluster.create(pod("inspect", container, restartPolicy="Never", securityContext={
        "runAsUser": 123456, "runAsGroup": 7000, "fsGroup": 8000, "supplementalGroups": [9000],
        "seccompProfile": {"type": "RuntimeDefault"}}, volumes=[
        {"name": "config", "configMap": {"name": "settings", "items": [{"key": "settings.json", "path": "settings.json",
                                                                        "mode": 0o440}]}},
        {"name": "secret", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "tmp", "emptyDir": {}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
    ]))  # fmt: skip
    done = settled(cluster, "inspect", phase_in("Succeeded", "Failed"))
    status = container_status(done)
    terminated = status["state"]["terminated"]
    assert (done["status"]["phase"], terminated["exitCode"], terminated["reason"]) == ("Succeeded", 0, "Completed"), (
        f"{terminated}\n{node.logs(NAMESPACE, 'inspect')}"
    )
    seen = json.loads(terminated["message"])

    # command and args, with $(VAR) expansion as the kubelet does it
    assert seen["argv"] == ["--depth", "3", "$(NOT_EXPANDED)", "$(UNDEFINED)"]
    env = seen["env"]
    assert env["CFG_MODE"] == "fast"  # envFrom a ConfigMap
    assert env["EXPANDED"] == "depth=3 mode=fast"
    assert env["POD_NAME"] == "inspect"
    assert env["POD_IP"] == done["status"]["podIP"]
    assert env["POD_APP"] == "inspect"
    assert env["SECRET_PASSWORD"] == "s3cret"
    assert env["FROM_SECRET_password"] == "s3cret"  # envFrom a Secret, with a prefix
    assert env["MEM_MI"] == "200"
    assert env["KUBERNETES_SERVICE_HOST"] == node.api.host
    assert env["KUBERNETES_SERVICE_PORT"] == str(node.api.port)
    # who: runAsUser (not in the image's /etc/passwd), runAsGroup, fsGroup and supplementalGroups
    assert (seen["uid"], seen["gid"]) == (123456, 7000)
    assert {8000, 9000} <= set(seen["groups"])
    # confinement: no capabilities, no privilege escalation, seccomp, read-only root, writable volumes
    assert int(seen["cap_eff"], 16) == 0
    assert seen["no_new_privs"] == "1"
    assert seen["seccomp"] == "2"  # filter mode: the runtime's default profile
    assert seen["root_writable"] is False
    assert seen["tmp_writable"] is True
    assert seen["pvc_writable"] is True
    assert (node.pvc_root / NAMESPACE / "data" / "probe").read_text() == "x"  # the claim is a host directory
    # volumes: items, modes, fsGroup ownership; the service account's token
    assert seen["config"] == '{"depth": 3}'
    assert seen["config_files"] == ["settings.json"]
    assert seen["config_stat"] == {"mode": "0o440", "gid": 8000}
    assert seen["secret"] == "s3cret"
    assert seen["secret_stat"] == {"mode": "0o440", "gid": 8000}  # 0400, and group-readable for fsGroup
    assert seen["token"] is True
    assert seen["namespace"] == NAMESPACE
    assert seen["hostname"] == "inspect"
    if seen["memory_limit"] is not None:
        assert seen["memory_limit"] == 200 * 2**20
    assert seen["server_workers"] == 1  # a model server would size its workers by the CPU limit (500m)
    # status as the kubelet reports it
    assert status["restartCount"] == 0
    assert status["ready"] is False
    assert done["status"]["qosClass"] == "Burstable"
    assert {c["type"]: c["status"] for c in done["status"]["conditions"]}["PodScheduled"] == "True"


def test_exit_codes_oom_kills_and_the_fallback_to_logs(node: Node, cluster: KubeClient, image: str) -> None:
    complain = "import sys; print('loading'); print('bad config: depth must be positive', file=sys.stderr); sys.exit(3)"
    failing = {"name": "fail", "image": image, "command": ["python3", "-c", complain],
               "terminationMessagePolicy": "FallbackToLogsOnError"}  # fmt: skip
    greedy = {"name": "greedy", "image": image, "resources": {"limits": {"memory": "64Mi"}},
              "command": ["python3", "-c", "x = bytearray(400 * 2**20); print(len(x))"]}  # fmt: skip
    cluster.create(pod("fail", failing, restartPolicy="Never"))
    cluster.create(pod("greedy", greedy, restartPolicy="Never"))

    failed = container_status(settled(cluster, "fail", phase_in("Failed", "Succeeded")))
    assert failed["state"]["terminated"]["exitCode"] == 3
    assert failed["state"]["terminated"]["reason"] == "Error"
    assert "bad config: depth must be positive" in failed["state"]["terminated"]["message"]

    killed = settled(cluster, "greedy", phase_in("Failed", "Succeeded"))
    assert killed["status"]["phase"] == "Failed"
    terminated = container_status(killed)["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (137, "OOMKilled")


PROBED = textwrap.dedent("""
    import http.server, os
    first = not os.path.exists("/state/started")
    open("/state/started", "a").close()
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = 500 if self.path == "/live" and first else 200
            self.send_response(code)
            self.end_headers()
        def log_message(self, *args):
            pass
    http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
""")


def test_probes_readiness_and_a_restart_after_a_failed_liveness_probe(
    node: Node, cluster: KubeClient, image: str
) -> None:
    """The first run fails its liveness probe and is restarted (after the kubelet's back-off); the second
    is live; readiness (an exec probe) and startup (a TCP probe) gate Ready."""
    container = {
        "name": "server", "image": image, "command": ["python3", "-c", PROBED],
        "ports": [{"name": "http", "containerPort": 8080}],
        "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 1, "failureThreshold": 30},
        "livenessProbe": {"httpGet": {"path": "/live", "port": "http"}, "periodSeconds": 1, "failureThreshold": 2},
        "readinessProbe": {"periodSeconds": 1, "exec": {"command": [
            "python3", "-c", "import os, sys; sys.exit(not os.path.exists('/state/started'))"]}},
        "volumeMounts": [{"name": "state", "mountPath": "/state"}],
    }  # fmt: skip
    volumes = [{"name": "state", "emptyDir": {}}]
    cluster.create(pod("probed", container, volumes=volumes, terminationGracePeriodSeconds=2))
    healthy = settled(cluster, "probed", lambda o: container_status(o).get("restartCount") == 1
                      and container_status(o).get("ready") is True, timeout=180)  # fmt: skip
    status = container_status(healthy)
    assert "running" in status["state"]
    assert status["started"] is True
    assert status["lastState"]["terminated"]["reason"] in ("Error", "Completed")
    assert healthy["status"]["phase"] == "Running"
    conditions = {c["type"]: c["status"] for c in healthy["status"]["conditions"]}
    assert (conditions["Ready"], conditions["ContainersReady"]) == ("True", "True")
    events = [e for e in cluster.list("v1", "Event", NAMESPACE) if e["involvedObject"]["name"] == "probed"]
    assert any(e["reason"] == "Killing" and "liveness" in e["message"] for e in events), events


def test_a_field_the_stand_in_cannot_honour_is_refused_by_name(node: Node, cluster: KubeClient, image: str) -> None:
    container = {"name": "c", "image": image, "command": ["true"],
                 "volumeMounts": [{"name": "host", "mountPath": "/host"}]}  # fmt: skip
    cluster.create(pod("hostpath", container, volumes=[{"name": "host", "hostPath": {"path": "/etc"}}]))
    refused = settled(cluster, "hostpath", lambda o: (container_status(o).get("state") or {}).get("waiting", {}).get(
        "reason") == "CreateContainerConfigError")
    waiting = container_status(refused)["state"]["waiting"]
    assert waiting["reason"] == "CreateContainerConfigError"
    assert "spec.volumes[0].hostPath" in waiting["message"]
    assert refused["status"]["phase"] == "Pending"
    [error] = [e for e in node.kubelet.errors if "hostpath" in e]
    assert "cannot honour spec.volumes[0].hostPath" in error
    node.kubelet.errors.remove(error)  # expected here; any other refusal still fails the test
