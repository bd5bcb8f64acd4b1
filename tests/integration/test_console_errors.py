"""The console scripts on the mistakes a new user makes: one line naming the problem, the right exit
status, never a traceback.

Each case runs the installed script (``modelops``, ``kubectl-modelops``) as a process: ``modelops
crds`` writing over a file or where nothing can be written, ``modelops operator`` without
credentials, with a malformed kubeconfig, with its metrics, liveness or webhook port taken or out
of range, ``kubectl modelops`` with a malformed kubeconfig; and ``--help`` naming every default
and the estimator allow-list.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from modelops.train.estimators import ALLOWED_ESTIMATORS
from operatorkit import free_port

BIN = Path(sys.executable).parent
MODELOPS = BIN / "modelops"
PLUGIN = BIN / "kubectl-modelops"
REPO = Path(__file__).resolve().parents[2]

# A kubeconfig that is not YAML at all: a flow mapping and a quoted string never closed.
BROKEN_YAML = 'apiVersion: v1\nclusters:\n- cluster: {server: "https://x\n  bad: [\n'
# One that is YAML but not shaped like a kubeconfig.
WRONG_SHAPE = "apiVersion: v1\ncurrent-context: a\ncontexts:\n- name: a\n"


def run(*command: str | Path, home: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The script as a user's shell runs it: no KUBECONFIG unless given, HOME without a ~/.kube."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KUBECONFIG", "MODELOPS_", "KUBERNETES_"))}
    full = {**clean, "HOME": str(home), **(env or {})}
    return subprocess.run([str(c) for c in command], env=full, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def one_line(result: subprocess.CompletedProcess[str], status: int, *needles: str) -> str:
    """The result failed with ``status`` and exactly one line on stderr holding every needle."""
    text = result.stderr
    assert "Traceback" not in text + result.stdout, text
    assert result.returncode == status, (result.returncode, text)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def good_kubeconfig(tmp_path: Path) -> Path:
    """A well-formed kubeconfig whose server never answers."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    return path


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else listens on, as another process on a busy machine would."""
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# --- modelops crds ----------------------------------------------------------------------------------


def test_crds_output_naming_a_file_is_bad_usage(tmp_path: Path, home: Path) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("keep me")
    result = run(MODELOPS, "crds", "--output", existing, home=home)
    one_line(result, 2, "modelops crds: error:", str(existing), "is a file, not a directory")
    assert existing.read_text() == "keep me"


def test_crds_output_where_nothing_can_be_written_fails_naming_the_path(tmp_path: Path, home: Path) -> None:
    below_a_file = tmp_path / "notes.txt"
    below_a_file.write_text("x")
    for target in (below_a_file / "crds", Path("/proc/modelops-crds")):
        result = run(MODELOPS, "crds", "--output", target, home=home)
        one_line(result, 1, "modelops crds: error: cannot write", str(target))


def test_crds_unknown_option_is_one_line(home: Path) -> None:
    one_line(run(MODELOPS, "crds", "--bogus", home=home), 2, "unrecognized arguments: --bogus", "--help")


# --- modelops operator -------------------------------------------------------------------------------


def operator(home: Path, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # Never a default port: this machine runs other operators and servers (unless the test sets it).
    given = " ".join(str(a) for a in args) + " ".join(env or {})
    ports = [] if "METRICS_PORT" in given else ["--metrics-port", str(free_port())]
    ports += ["--liveness", f"http://127.0.0.1:{free_port()}/healthz", "--webhook-port", "0"]
    return run(MODELOPS, "operator", "--standalone", *ports, *args, home=home, env=env)


def test_operator_without_credentials_exits_at_once(home: Path) -> None:
    line = one_line(operator(home), 1, "modelops operator: error: no Kubernetes credentials")
    assert str(home / ".kube" / "config") in line


def test_operator_whose_exec_plugin_fails_says_so_in_one_line(tmp_path: Path, home: Path) -> None:
    plugin = tmp_path / "get-token"
    plugin.write_text(f"#!{sys.executable}\nimport sys\nsys.stderr.write('sso: session expired\\n')\nsys.exit(1)\n")
    plugin.chmod(0o755)
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        f"users: [{{name: u, user: {{exec: {{apiVersion: client.authentication.k8s.io/v1, command: '{plugin}'}}}}}}]\n"
    )
    one_line(operator(home, env={"KUBECONFIG": str(config)}), 1, "no Kubernetes credentials",
             f"kubeconfig {config} (context c): the exec credential plugin failed", "sso: session expired")  # fmt: skip


def test_operator_whose_api_server_never_answers_says_so_in_one_line(home: Path, good_kubeconfig: Path) -> None:
    """Kopf would retry for minutes, a traceback at the end: the operator waits --api-wait, then one line."""
    line = one_line(operator(home, "--api-wait", "1", env={"KUBECONFIG": str(good_kubeconfig)}), 1,
                    "modelops operator: error: cannot reach the API server at https://127.0.0.1:1")  # fmt: skip
    assert f"kubeconfig {good_kubeconfig} (context c)" in line


@pytest.mark.parametrize(("text", "needle"), [(BROKEN_YAML, "is not valid YAML"), (WRONG_SHAPE, "is malformed")])
def test_operator_with_a_malformed_kubeconfig_says_so_in_one_line(
    tmp_path: Path, home: Path, text: str, needle: str
) -> None:
    config = tmp_path / "broken-kubeconfig"
    config.write_text(text)
    one_line(operator(home, env={"KUBECONFIG": str(config)}), 1, f"kubeconfig {config} {needle}")


def test_operator_with_its_metrics_port_taken_names_the_port(
    home: Path, good_kubeconfig: Path, taken_port: int
) -> None:
    result = operator(home, "--metrics-port", str(taken_port), env={"KUBECONFIG": str(good_kubeconfig)})
    one_line(result, 1, f"the metrics port 0.0.0.0:{taken_port} is already in use", "--metrics-port")


def test_operator_with_its_liveness_port_taken_names_the_port(
    home: Path, good_kubeconfig: Path, taken_port: int
) -> None:
    result = operator(home, "--liveness", f"http://0.0.0.0:{taken_port}/healthz",
                      env={"KUBECONFIG": str(good_kubeconfig)})  # fmt: skip
    one_line(result, 1, f"the liveness port 0.0.0.0:{taken_port} is already in use", "--liveness")


def test_operator_with_its_webhook_port_taken_names_the_port(
    tmp_path: Path, home: Path, good_kubeconfig: Path, taken_port: int
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "tls.crt").write_text("unused: the port is checked first")
    (certs / "tls.key").write_text("unused")
    result = operator(home, "--webhook-port", str(taken_port), "--webhook-host", "0.0.0.0",
                      "--webhook-cert-dir", certs, env={"KUBECONFIG": str(good_kubeconfig)})  # fmt: skip
    one_line(result, 1, f"the webhook port 0.0.0.0:{taken_port} is already in use", "--webhook-port")


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (("--metrics-port", "99999"), {}, "--metrics-port must be 0..65535"),
        (("--metrics-port", "-3"), {}, "--metrics-port must be 0..65535"),
        ((), {"MODELOPS_METRICS_PORT": "lots"}, "invalid int value: 'lots'"),
        (("--liveness", "healthz"), {}, "--liveness 'healthz' is not an http://HOST:PORT/PATH URL"),
        (("--api-wait", "nan"), {}, "--api-wait: nan is out of range: must be at least 0"),
        (("--api-wait", "-1"), {}, "--api-wait: -1 is out of range: must be at least 0"),
    ],
)
def test_operator_bad_usage_is_one_line_and_status_2(
    home: Path, good_kubeconfig: Path, args: tuple[str, ...], env: dict[str, str], needle: str
) -> None:
    # Given last, these options override the free ports operator() passes.
    status = 1 if needle.startswith("--liveness") else 2
    one_line(operator(home, *args, env={"KUBECONFIG": str(good_kubeconfig), **env}), status, needle)


def test_operator_help_shows_every_default(home: Path) -> None:
    result = run(MODELOPS, "operator", "--help", home=home)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for default in ("default: all namespaces", "else modelops-operator", "else http://0.0.0.0:8080/healthz",
                    "else 8081", "else 9443", "else /etc/modelops/webhook-certs", "else 0.0.0.0",
                    "else the built-in defaults", "default: random"):  # fmt: skip
        assert default in text, default


# --- kubectl modelops --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "needle"), [(BROKEN_YAML, "is not valid YAML: "), (WRONG_SHAPE, "is malformed")])
def test_plugin_with_a_malformed_kubeconfig_says_so_in_one_line(
    tmp_path: Path, home: Path, text: str, needle: str
) -> None:
    config = tmp_path / "broken-kubeconfig"
    config.write_text(text)
    for args in (("--kubeconfig", str(config)), ()):
        result = run(PLUGIN, "status", "iris", *args, home=home, env={"KUBECONFIG": str(config)})
        one_line(result, 1, f"error: kubeconfig {config} {needle}")


def test_plugin_help_shows_its_defaults(home: Path) -> None:
    text = " ".join(run(PLUGIN, "--help", home=home).stdout.split())
    assert "output format (default: table)" in text
    assert "(default: $KUBECONFIG's files merged, else ~/.kube/config, else in-cluster)" in text
    assert "list across all namespaces, ignoring -n" in text
    approve = " ".join(run(PLUGIN, "approve", "--help", home=home).stdout.split())
    assert "stage to approve (default: Production)" in approve


# --- the estimator allow-list ------------------------------------------------------------------------


def test_the_estimator_allow_list_is_in_train_help_the_docs_and_the_crd(home: Path) -> None:
    result = run(MODELOPS, "train", "--help", home=home)
    assert result.returncode == 0
    crd = (REPO / "crds" / "modelops.io_trainingruns.yaml").read_text()
    docs = (REPO / "docs" / "contracts.md").read_text()
    for path in ALLOWED_ESTIMATORS:
        assert f"    {path}\n" in result.stdout, path
        assert f"`{path}`" in docs, path
        assert path in " ".join(crd.split()), path
