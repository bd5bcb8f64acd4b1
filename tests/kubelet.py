"""The job controller and the kubelet, played honestly by the tests.

No cluster runs here, so a test does their part by hand: it creates the Job's Pods, runs
the Pod's own container command and env as a process on this machine (with the pod's
paths mapped into a work directory), and writes back what the kubelet and the job
controller would: pod phase, the container's termination message (cut to 4096 bytes, as the
kubelet cuts it), Job status and conditions, and -- given the emulator -- the container's
output as its ``pods/log``. The operator sees only the API objects, exactly as in a cluster.
"""

from __future__ import annotations

import base64
import datetime
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubeemu import Emulator
from kubeemu.client import KubeClient

REPO = Path(__file__).resolve().parents[1]
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
TERMINATION_LIMIT = 4096  # the kubelet keeps at most this much of a termination message


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Kubelet:
    """Runs the pods of Jobs in a work directory; the pods' /mnt/pvc and /etc/modelops live there."""

    def __init__(self, kube: KubeClient, workdir: Path, emulator: Emulator | None = None) -> None:
        self.kube = kube
        self.workdir = workdir
        self.emulator = emulator
        self.pvc_root = workdir / "pvc"
        self.pvc_root.mkdir(parents=True, exist_ok=True)

    def _map(self, path: str, config_dir: Path) -> str:
        if path.startswith("/mnt/pvc"):
            return str(self.pvc_root) + path.removeprefix("/mnt/pvc")
        if path.startswith("/etc/modelops"):
            return str(config_dir) + path.removeprefix("/etc/modelops")
        if path.startswith("/tmp/"):  # the pod's /tmp emptyDir, one per pod
            return str(config_dir.with_name(config_dir.name.replace("config-", "tmp-"))) + path.removeprefix("/tmp")
        return path

    def start_pod(self, job: dict[str, Any], index: int) -> dict[str, Any]:
        """The job controller creates a Pod for one index; the kubelet reports it Running."""
        meta, template = job["metadata"], job["spec"]["template"]
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{meta['name']}-{index}-x",
                "namespace": meta["namespace"],
                "labels": {**template["metadata"]["labels"], "batch.kubernetes.io/job-name": meta["name"]},
                "annotations": {INDEX_ANNOTATION: str(index)},
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                     "uid": meta["uid"], "controller": True}],
            },
            "spec": template["spec"],
        }  # fmt: skip
        created = self.kube.create(pod)
        name = created["metadata"]["name"]
        running = {"status": {"phase": "Running", "startTime": now()}}
        self.kube.patch_status("v1", "Pod", meta["namespace"], name, running)
        self.kube.patch_status(
            "batch/v1", "Job", meta["namespace"], meta["name"], {"status": {"active": 1, "startTime": now()}}
        )
        return created

    def run_pod(self, job: dict[str, Any], pod: dict[str, Any], index: int) -> int:
        """Run the pod's container as a process, then report how it ended, as the kubelet does."""
        namespace = job["metadata"]["namespace"]
        spec = pod["spec"]
        container = spec["containers"][0]
        config_dir = self.workdir / f"config-{pod['metadata']['name']}"
        config_dir.mkdir(parents=True, exist_ok=True)
        for volume in spec["volumes"]:
            if "configMap" in volume:
                cm = self.kube.get("v1", "ConfigMap", namespace, volume["configMap"]["name"])
                for key, value in cm["data"].items():
                    (config_dir / key).write_text(value)
        env = {**os.environ, "PYTHONPATH": str(REPO / "operator")}
        for item in container.get("env") or []:
            if "value" in item:
                env[item["name"]] = self._map(item["value"], config_dir)
            elif "secretKeyRef" in (item.get("valueFrom") or {}):
                ref = item["valueFrom"]["secretKeyRef"]
                secret = self.kube.get("v1", "Secret", namespace, ref["name"])
                env[item["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
        env["MODELOPS_PVC_ROOT"] = str(self.pvc_root)
        if job["spec"].get("completionMode") == "Indexed":
            env["JOB_COMPLETION_INDEX"] = str(index)
        command = container["command"]
        assert command[0] == "modelops", command
        termination = self.workdir / f"termination-{pod['metadata']['name']}"
        args = [self._map(a, config_dir) for a in container.get("args") or []]
        # One stream, in the order it was written, as a container runtime keeps a container's log.
        process = subprocess.run([sys.executable, "-m", "modelops", *command[1:], *args,
                                  "--termination-log", str(termination)],
                                 env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                 timeout=300)  # fmt: skip
        log = process.stdout
        # terminationMessagePolicy FallbackToLogsOnError: the log's tail when the file is empty.
        message = termination.read_text() if termination.exists() else log[-4096:]
        message = message.encode()[:TERMINATION_LIMIT].decode(errors="ignore")
        if self.emulator is not None:
            self.emulator.set_container_log(namespace, pod["metadata"]["name"], container["name"], log)
        phase = "Succeeded" if process.returncode == 0 else "Failed"
        self.kube.patch_status("v1", "Pod", namespace, pod["metadata"]["name"], {"status": {
            "phase": phase,
            "containerStatuses": [{"name": container["name"], "ready": False, "restartCount": 0,
                                   "image": container["image"], "imageID": "",
                                   "state": {"terminated": {"exitCode": process.returncode, "message": message,
                                                            "reason": "Completed" if phase == "Succeeded" else "Error",
                                                            "finishedAt": now()}}}],
        }})  # fmt: skip
        return process.returncode

    def finish_job(self, job: dict[str, Any], *, succeeded: int, failed: int, reason: str | None = None) -> None:
        """The job controller's final word: Complete, or Failed with a reason."""
        if reason is None:
            condition = {"type": "Complete", "status": "True", "lastTransitionTime": now()}
        else:
            condition = {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "lastTransitionTime": now(),
                "message": "Job has reached the specified backoff limit",
            }
        status: dict[str, Any] = {"active": 0, "succeeded": succeeded, "failed": failed, "conditions": [condition]}
        if reason is None:
            status["completionTime"] = now()
        meta = job["metadata"]
        self.kube.patch_status("batch/v1", "Job", meta["namespace"], meta["name"], {"status": status})
