"""kubectl modelops finds and reads credentials as kubectl does, against the emulator.

Two kubeconfig files merged through $KUBECONFIG (the first file to name a cluster, user or
context wins; the first current-context wins), several contexts and their namespaces,
``--kubeconfig`` read alone, an ``exec`` credential plugin (a real script printing an
ExecCredential, whose token the emulator authenticates), ``-A`` on a listing command, and
malformed or missing files: one line and exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubeemu import Emulator
from kubeemu.client import KubeClient
from modelops import kubeauth
from modelops.plugin import cli
from plugin.pluginkit import NS, Seeded, model_version

UNREACHABLE = "http://127.0.0.1:1"


def write(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", **config}, sort_keys=False))
    return path


def exec_plugin(path: Path, token: str, *, fail: str | None = None) -> Path:
    """A credential plugin as kubectl runs them: prints an ExecCredential; records each run in a log."""
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": "2999-01-01T00:00:00Z"},
    }
    body = (
        f"import sys\nsys.stderr.write({fail!r} + '\\n')\nsys.exit(3)\n"
        if fail
        else f"import json, os, sys\n"
        f"with open(os.environ['PLUGIN_LOG'], 'a') as log:\n"
        f"    log.write(json.loads(os.environ['KUBERNETES_EXEC_INFO'])['apiVersion'] + '\\n')\n"
        f"print(json.dumps({credential!r}))\n"
    )
    path.write_text(f"#!{sys.executable}\n{body}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def exec_user(command: Path, log: Path) -> dict[str, Any]:
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(command),
            "env": [{"name": "PLUGIN_LOG", "value": str(log)}],
            "interactiveMode": "Never",
        }
    }


@pytest.fixture
def reader(emulator: Emulator, cluster: KubeClient) -> str:
    """A user (token tok-reader) who may read our kinds in namespace ml, and nothing else."""
    emulator.add_user("tok-reader", "reader")
    emulator.grant("reader", [{"apiGroups": ["modelops.io"], "resources": ["*"], "verbs": ["get", "list"]}],
                   namespace=NS)  # fmt: skip
    return "tok-reader"


@pytest.fixture
def two_files(emulator: Emulator, tmp_path: Path, reader: str) -> tuple[Path, Path]:
    """first: the emulator's cluster, a reader and context `ml`, current; second: a context `ml` of
    its own that points nowhere (shadowed by the first), a context `other` on the first's cluster,
    and a current-context of its own (kubectl ignores it: the first file set one)."""
    first = write(tmp_path / "first", {
        "clusters": [{"name": "emu", "cluster": {"server": emulator.url}}],
        "users": [{"name": "reader", "user": {"token": reader}}],
        "contexts": [{"name": "ml", "context": {"cluster": "emu", "user": "reader", "namespace": NS}}],
        "current-context": "ml",
    })  # fmt: skip
    second = write(tmp_path / "second", {
        "clusters": [{"name": "nowhere", "cluster": {"server": UNREACHABLE}}],
        "users": [{"name": "reader", "user": {"token": "not-this-one"}}],
        "contexts": [
            {"name": "ml", "context": {"cluster": "nowhere", "user": "reader", "namespace": "elsewhere"}},
            {"name": "other", "context": {"cluster": "emu", "user": "reader"}},
        ],
        "current-context": "other",
    })  # fmt: skip
    return first, second


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str, *needles: str) -> str:
    assert code == 1, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_kubeconfig_files_are_merged_as_kubectl_merges_them(
    seeded: Seeded, two_files: tuple[Path, Path], emulator: Emulator, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    first, second = two_files
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(first), str(tmp := first.parent / "absent"), str(second)]))
    assert not tmp.exists()  # a listed file that does not exist is skipped, as kubectl does
    start = len(emulator.audit)

    # No -n, no --context: the first file's current context `ml`, its cluster and its namespace.
    code, out, err = run(capsys, "history", "iris-v2", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["namespace"] == NS
    reads = emulator.audit[start:]
    assert reads
    assert {(r.user, r.namespace) for r in reads} == {("reader", NS)}

    # A context only the second file defines, on a cluster only the first defines; no namespace in it.
    code, _, err = run(capsys, "--context", "other", "history", "iris-v2")
    one_line_error(code, err, "User \"reader\" cannot get", "in the namespace \"default\"")
    code, out, err = run(capsys, "--context", "other", "-n", NS, "history", "iris-v2", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["version"] == "iris-v2"


def test_the_first_current_context_wins_where_the_library_keeps_the_last(
    two_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kubernetes.config.kube_config import KubeConfigMerger

    first, second = two_files
    listed = os.pathsep.join([str(first), str(second)])
    assert KubeConfigMerger(listed).config.value["current-context"] == "other"  # why kubeauth chooses itself
    monkeypatch.setenv("KUBECONFIG", listed)
    creds = kubeauth.load()
    assert creds.source == f"kubeconfig {listed} (context ml)"
    assert creds.namespace == NS
    assert creds.connection().authorization == "Bearer tok-reader"  # the first file's user of that name


def test_an_explicit_kubeconfig_is_read_alone(
    seeded: Seeded, two_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = two_files
    monkeypatch.setenv("KUBECONFIG", str(first))
    # The second file alone: its `other` context names cluster `emu`, which only the first file has.
    code, _, err = run(capsys, "--kubeconfig", str(second), "--context", "other", "history", "iris-v2")
    one_line_error(code, err, f"kubeconfig {second}")
    # Its own current context `other`, not $KUBECONFIG's `ml`.
    code, _, err = run(capsys, "--kubeconfig", str(second), "--context", "ml", "history", "iris-v2")
    one_line_error(code, err, f"cannot reach the API server at {UNREACHABLE}")
    code, _, err = run(capsys, "--kubeconfig", str(first.parent / "missing"), "history", "iris-v2")
    one_line_error(code, err, f"no kubeconfig at {first.parent / 'missing'}")


def test_several_contexts_pick_cluster_user_and_namespace(
    seeded: Seeded, emulator: Emulator, tmp_path: Path, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.add_user("tok-other", "other")  # authenticated, allowed nothing
    config = write(tmp_path / "config", {
        "clusters": [{"name": "emu", "cluster": {"server": emulator.url}},
                     {"name": "down", "cluster": {"server": UNREACHABLE}}],
        "users": [{"name": "reader", "user": {"token": reader}}, {"name": "other", "user": {"token": "tok-other"}}],
        "contexts": [
            {"name": "ml", "context": {"cluster": "emu", "user": "reader", "namespace": NS}},
            {"name": "as-other", "context": {"cluster": "emu", "user": "other", "namespace": NS}},
            {"name": "down", "context": {"cluster": "down", "user": "reader"}},
        ],
        "current-context": "down",
    })  # fmt: skip
    code, out, err = run(capsys, "--kubeconfig", str(config), "--context", "ml", "status", "iris", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["namespace"] == NS
    code, _, err = run(capsys, "--kubeconfig", str(config), "--context", "as-other", "status", "iris")
    one_line_error(code, err, 'User "other" cannot list')
    code, _, err = run(capsys, "--kubeconfig", str(config), "status", "iris")
    one_line_error(code, err, f"cannot reach the API server at {UNREACHABLE}")
    code, _, err = run(capsys, "--kubeconfig", str(config), "--context", "nope", "status", "iris")
    one_line_error(code, err, f"kubeconfig {config} has no context 'nope'")


def test_an_exec_plugin_supplies_the_token(
    seeded: Seeded, emulator: Emulator, tmp_path: Path, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "plugin.log"
    plugin = exec_plugin(tmp_path / "get-token", reader)
    config = write(tmp_path / "config", {
        "clusters": [{"name": "emu", "cluster": {"server": emulator.url}}],
        "users": [{"name": "sso", "user": exec_user(plugin, log)}],
        "contexts": [{"name": "sso", "context": {"cluster": "emu", "user": "sso", "namespace": NS}}],
        "current-context": "sso",
    })  # fmt: skip
    start = len(emulator.audit)
    code, out, err = run(capsys, "--kubeconfig", str(config), "status", "iris", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["model"] == "iris"
    assert log.read_text().splitlines() == ["client.authentication.k8s.io/v1"]  # run once, told its API version
    assert {r.user for r in emulator.audit[start:]} == {"reader"}


def test_a_failing_exec_plugin_is_one_line(
    emulator: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = exec_plugin(tmp_path / "get-token", "", fail="sso: you are not logged in")
    config = write(tmp_path / "config", {
        "clusters": [{"name": "emu", "cluster": {"server": emulator.url}}],
        "users": [{"name": "sso", "user": exec_user(plugin, tmp_path / "log")}],
        "contexts": [{"name": "sso", "context": {"cluster": "emu", "user": "sso"}}],
        "current-context": "sso",
    })  # fmt: skip
    code, _, err = run(capsys, "--kubeconfig", str(config), "status", "iris")
    one_line_error(code, err, "the exec credential plugin failed", "sso: you are not logged in")


def test_all_namespaces_lists_a_model_in_each_namespace(
    seeded: Seeded, run: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    seeded.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-eu"}})
    eu = model_version("iris-v1", "iris", 1, "Staging", {"accuracy": 0.91})
    seeded.kube.create(eu, "ml-eu")

    result = run("status", "iris", "-A", "-o", "json", namespace="ignored-as-kubectl-does")
    assert result.code == 0, result.err
    found = result.json()
    assert [view["namespace"] for view in found] == [NS, "ml-eu"]
    assert [v["name"] for v in found[1]["modelVersions"]] == ["iris-v1"]
    assert "iris-v1" in [v["name"] for v in found[0]["modelVersions"]]
    assert len(found[0]["modelVersions"]) > 1

    text = run("--all-namespaces", "status", "iris")
    assert text.code == 0, text.err
    assert f"Model iris in namespace {NS}" in text.out
    assert "Model iris in namespace ml-eu" in text.out

    missing = run("status", "nope", "-A")
    assert (missing.code, missing.err) == (
        1, "error: model nope has no TrainingRuns, ModelVersions or ModelDeployments in any namespace\n"
    )  # fmt: skip


@pytest.mark.parametrize("command", [["approve", "iris-v3"], ["history", "iris"], ["abort", "iris"]])
def test_all_namespaces_is_refused_where_one_object_is_named(run: Any, command: list[str]) -> None:
    result = run(*command, "-A")
    assert result.code == 2
    assert result.err == (
        f"kubectl modelops {command[0]}: error: -A lists across namespaces; {command[0]} acts on one object: "
        "name its namespace with -n\n"
    )


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('clusters: [{name: a, cluster: {server: "https://x\n', "is not valid YAML: "),
        ("- just\n- a list\n", "is malformed"),
        ("current-context: a\ncontexts:\n- name: a\n", "is malformed"),
        ("current-context: a\ncontexts: [{name: a, context: {cluster: b, user: c}}]\n", "is malformed"),
    ],
)
def test_a_malformed_file_in_a_merged_list_is_named_in_one_line(
    two_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], text: str, needle: str,
) -> None:  # fmt: skip
    broken = tmp_path / "broken"
    broken.write_text(text)
    first, _ = two_files
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(broken), str(first)]))
    code, _, err = run(capsys, "status", "iris")
    line = one_line_error(code, err, needle)
    assert str(broken) in line


def test_an_empty_file_in_the_list_is_skipped(
    seeded: Seeded, two_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    empty = tmp_path / "empty"
    empty.write_text("")
    first, _ = two_files
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(empty), str(first)]))
    code, _, err = run(capsys, "history", "iris-v2")
    assert code == 0, err


def test_in_cluster_credentials_are_the_pods_service_account(tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("pod-token\n")  # as the kubelet writes it
    (account / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (account / "namespace").write_text("ml-prod")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    creds = kubeauth.in_cluster(account, env)
    assert creds is not None
    conn = creds.connection()
    assert (conn.server, conn.authorization, conn.ca_path) == ("https://[fd00::1]:443", "bearer pod-token",
                                                               str(account / "ca.crt"))  # fmt: skip
    assert conn.scheme_and_token == ("bearer", "pod-token")
    assert creds.namespace == "ml-prod"
    assert kubeauth.in_cluster(account, {}) is None


def test_a_relative_exec_command_is_found_next_to_the_file_that_names_its_user(
    seeded: Seeded, emulator: Emulator, tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """kubectl resolves `./bin/get-token` against the file the user is in; the library would run it from
    the directory of the file that names the cluster (here another one, without the script)."""
    (clusters := tmp_path / "clusters").mkdir()
    (users := tmp_path / "users" / "bin").mkdir(parents=True)
    log = tmp_path / "plugin.log"
    exec_plugin(users / "get-token", reader)
    cluster_file = write(clusters / "config", {
        "clusters": [{"name": "emu", "cluster": {"server": emulator.url}}],
        "contexts": [{"name": "sso", "context": {"cluster": "emu", "user": "sso", "namespace": NS}}],
        "current-context": "sso",
    })  # fmt: skip
    user = exec_user(Path("./bin/get-token"), log)
    user_file = write(tmp_path / "users" / "config", {"users": [{"name": "sso", "user": user}]})
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join([str(cluster_file), str(user_file)]))
    monkeypatch.chdir(clusters)  # neither the working directory nor the cluster's file has ./bin
    code, out, err = run(capsys, "status", "iris", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["model"] == "iris"
    assert log.read_text().splitlines() == ["client.authentication.k8s.io/v1"]


def test_a_clusters_proxy_url_carries_every_call(
    seeded: Seeded, emulator: Emulator, tmp_path: Path, reader: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from proxykit import forward_proxy

    monkeypatch.setenv("HTTP_PROXY", UNREACHABLE)  # the kubeconfig's proxy-url wins over the environment's
    with forward_proxy() as proxy:
        config = write(tmp_path / "config", {
            "clusters": [{"name": "emu", "cluster": {"server": emulator.url, "proxy-url": proxy.url}}],
            "users": [{"name": "reader", "user": {"token": reader}}],
            "contexts": [{"name": "ml", "context": {"cluster": "emu", "user": "reader", "namespace": NS}}],
            "current-context": "ml",
        })  # fmt: skip
        start = len(emulator.audit)
        code, out, err = run(capsys, "--kubeconfig", str(config), "status", "iris", "-o", "json")
        assert code == 0, err
        assert json.loads(out)["model"] == "iris"
        calls = len(emulator.audit) - start
        assert calls > 0
        assert len(proxy.forwarded) == calls
        assert all(url.startswith(emulator.url + "/apis/modelops.io/") for _, url in proxy.forwarded)


def test_tls_server_name_checks_the_certificate_against_that_name(
    seeded: Seeded, emulator: Emulator, tmp_path: Path, reader: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The serving certificate names `kubernetes.default`, not `localhost`: kubectl reaches such a
    cluster by `localhost` (a tunnel) with tls-server-name set, and refuses it without."""
    api = emulator.serve_in_cluster("127.0.0.1", tmp_path / "apiserver")

    def config(name: str | None) -> Path:
        cluster: dict[str, Any] = {"server": f"https://localhost:{api.port}", "certificate-authority": str(api.ca_path)}
        if name:
            cluster["tls-server-name"] = name
        return write(tmp_path / f"config-{name}", {
            "clusters": [{"name": "k", "cluster": cluster}],
            "users": [{"name": "reader", "user": {"token": reader}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "reader", "namespace": NS}}],
            "current-context": "c",
        })  # fmt: skip

    code, out, err = run(capsys, "--kubeconfig", str(config("kubernetes.default")), "status", "iris", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["model"] == "iris"
    code, _, err = run(capsys, "--kubeconfig", str(config(None)), "status", "iris")
    one_line_error(code, err, "cannot reach the API server at https://localhost")
