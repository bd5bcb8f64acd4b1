"""The image itself: its size, what it leaves out, and its commands under any user with a read-only root.

Every command runs as a user id the image's /etc/passwd does not know (with group 0, as OpenShift
runs pods), on a read-only root filesystem with only /tmp writable, without capabilities and
without privilege escalation: ``modelops train`` on a bundled dataset, ``modelops serve`` answering
a v2 inference request, ``modelops drift`` on a file, and the kubectl plugin. The operator under
such a user is tests/image/test_operator_container.py's.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from containerkubelet import docker
from promkit import Prometheus

MAX_SIZE = 450_000_000  # bytes; `docker images` shows it as MB of 10^6 bytes
ANY_USER = "1000680000:0"
LOCKED_DOWN = ["--user", ANY_USER, "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL",
               "--security-opt", "no-new-privileges"]  # fmt: skip

pytestmark = pytest.mark.timeout(300)


def run(
    image: str, *args: str, mounts: tuple[str, ...] = (), entrypoint: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker run`` of the image, locked down as every pod is, as a user /etc/passwd does not know."""
    command = ["docker", "run", "--rm", *LOCKED_DOWN, *(f"-v={m}" for m in mounts)]
    command += ["--entrypoint", entrypoint] if entrypoint else []
    return subprocess.run([*command, image, *args], capture_output=True, text=True, timeout=240)


def test_the_image_is_at_most_450_mb_and_ships_no_build_tools(image: str) -> None:
    found = docker.image(image)
    assert found is not None
    assert found["Size"] <= MAX_SIZE, f"{found['Size'] / 1e6:.0f} MB (bench/README.md says what is in it)"
    check = run(image, "-c", """
import glob, importlib.util, json, os, shutil, sysconfig
site = sysconfig.get_paths()["purelib"]
print(json.dumps({
    "installers": [m for m in ("pip", "setuptools", "wheel") if importlib.util.find_spec(m)],
    "tests": sorted(p for p in glob.glob(site + "/**/tests", recursive=True) if os.path.isdir(p))[:5],
    "tools": [t for t in ("gcc", "cc", "strip", "ld", "apt-get") if shutil.which(t) and t != "apt-get"],
    "headers": glob.glob(site + "/**/*.h", recursive=True)[:5],
}))""", entrypoint="python3")  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert json.loads(check.stdout) == {"installers": [], "tests": [], "tools": [], "headers": []}


def test_the_build_s_extra_certificates_stay_out_of_the_image(image: str) -> None:
    """The build trusts this machine's extra CA certificates (a TLS-intercepting proxy's) for its
    downloads only: neither they nor the build argument carrying them are in the image."""
    history = subprocess.run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    config = json.dumps(docker.image(image))
    assert "BEGIN CERTIFICATE" not in history + config
    assert "EXTRA_CA_CERTS" not in history + config
    extra = sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    bundle = run(image, "/etc/ssl/certs/ca-certificates.crt", entrypoint="cat").stdout
    for certificate in extra:
        body = "".join(certificate.read_text().split("-----")[2].split())
        assert body[:64] not in "".join(bundle.split()), f"{certificate} was baked into the image"


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A directory the container's unknown user may write, as a volume with fsGroup would be."""
    tmp_path.chmod(0o777)
    return tmp_path


def test_train_and_drift_as_any_user_on_a_read_only_root(image: str, shared: Path) -> None:
    config = {"model": "iris", "dataset": {"uri": "sklearn://iris", "target": "target"},
              "estimator": {"className": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}}}
    (shared / "run.json").write_text(json.dumps(config))
    trained = run(image, "train", "--config", "/work/run.json", "--output", "/work/out", mounts=(f"{shared}:/work",))
    assert trained.returncode == 0, trained.stderr
    result = json.loads((shared / "out" / "result.json").read_text())
    assert result["metrics"]["accuracy"] > 0.8
    assert (shared / "out").stat().st_uid == 1000680000
    rows = ["sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)"] + ["5.1,3.5,1.4,0.2"] * 200
    (shared / "current.csv").write_text("\n".join(rows) + "\n")
    drift = run(image, "drift", "--reference", "/work/out/result.json", "--current", "/work/current.csv",
                "--format", "json", mounts=(f"{shared}:/work:ro",))  # fmt: skip
    assert drift.returncode in (0, 1), drift.stderr  # 1: drift found, which one repeated row does show
    assert {f["name"] for f in json.loads(drift.stdout)["features"]} == set(rows[0].split(","))
    plugin = run(image, "--help", entrypoint="kubectl-modelops")
    assert plugin.returncode == 0, plugin.stderr


@pytest.fixture
def server(image: str, shared: Path) -> Iterator[str]:
    """``modelops serve`` of a freshly trained model, as any user on a read-only root; its base URL."""
    config = {"model": "iris", "dataset": {"uri": "sklearn://iris", "target": "target"},
              "estimator": {"className": "sklearn.tree.DecisionTreeClassifier", "params": {"max_depth": 3}}}
    (shared / "run.json").write_text(json.dumps(config))
    trained = run(image, "train", "--config", "/work/run.json", "--output", "/work/model", mounts=(f"{shared}:/work",))
    assert trained.returncode == 0, trained.stderr
    container = docker.run([*LOCKED_DOWN, "-v", f"{shared}/model:/model:ro", image, "serve", "--model-dir", "/model",
                            "--host", "0.0.0.0", "--port", "8080", "--workers", "2"])  # fmt: skip
    try:
        address = (docker.inspect(container) or {})["NetworkSettings"]["IPAddress"]
        yield f"http://{address}:8080"
    finally:
        logs = docker.logs(container)
        docker.remove(container)
        assert "Traceback" not in logs, logs


def test_serve_as_any_user_on_a_read_only_root(server: str) -> None:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{server}/v2/health/ready", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    Prometheus.wait(ready, timeout=120, what="modelops serve ready")
    body = json.dumps({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]})
    request = urllib.request.Request(f"{server}/v2/models/iris/infer", data=body.encode(),
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        outputs = json.loads(answer.read())["outputs"]
    assert outputs[0]["data"] == [0]  # setosa
