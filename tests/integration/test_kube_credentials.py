"""The operator's credentials, read by the Kubernetes client library, against the emulator.

``modelops operator`` as a process with two kubeconfig files merged in $KUBECONFIG whose
current context authenticates through an ``exec`` plugin: Kopf (watching, patching) and the
operator's own client make every request as the identity the plugin's token names. The
operator's client renews an exec plugin's answer when it expires and loads the credentials
again after a 401 (a revoked token), retrying once.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import stat
import sys
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
import yaml

from integration.test_operator_process import API, MODEL_VERSION, NAMESPACE, OperatorProcess, reconciled, wait_until
from kubeemu import Emulator
from kubeemu.client import KubeClient
from modelops import kubeauth
from modelops.controller.kube import Kube


def token_plugin(path: Path, token_file: Path, log: Path, expires: str = "2999-01-01T00:00:00Z") -> Path:
    """An exec credential plugin that answers the token in ``token_file`` (read at each run)."""
    path.write_text(
        f"#!{sys.executable}\n"
        "import json\n"
        f"with open({str(log)!r}, 'a') as out:\n"
        "    out.write('run\\n')\n"
        f"token = open({str(token_file)!r}).read().strip()\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', 'kind': 'ExecCredential',\n"
        f"                  'status': {{'token': token, 'expirationTimestamp': {expires!r}}}}}))\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def issue(emulator: Emulator, tmp_path: Path, token: str, user: str, **plugin: str) -> tuple[Path, Path, Path]:
    """``token`` authenticates ``user`` (an admin); the plugin answers it: (token file, run log, plugin)."""
    emulator.add_user(token, user, groups=["system:masters"])
    token_file, log = tmp_path / "token", tmp_path / "plugin.log"
    token_file.write_text(token)
    return token_file, log, token_plugin(tmp_path / "get-token", token_file, log, **plugin)


def kubeconfig(path: Path, server: str, plugin: Path, *, current: str = "op") -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "emu", "cluster": {"server": server}}],
        "users": [{"name": "op", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                                     "command": str(plugin), "interactiveMode": "Never"}}}],
        "contexts": [{"name": "op", "context": {"cluster": "emu", "user": "op", "namespace": NAMESPACE}}],
        "current-context": current,
    }))  # fmt: skip
    return path


def test_kopf_and_the_operators_client_log_in_through_a_merged_kubeconfig_and_an_exec_plugin(
    cluster: KubeClient, emulator: Emulator, tmp_path: Path
) -> None:
    _, log, plugin = issue(emulator, tmp_path, "tok-operator", "modelops-exec")
    first = kubeconfig(tmp_path / "first", emulator.url, plugin)
    # The second file names the same context on a server that is not there, and its own current
    # context: kubectl (and the operator) keep the first file's.
    second = tmp_path / "second"
    second.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "emu", "cluster": {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "op", "user": {"token": "not-this-one"}}],
        "contexts": [{"name": "op", "context": {"cluster": "emu", "user": "op"}},
                     {"name": "other", "context": {"cluster": "emu", "user": "op"}}],
        "current-context": "other",
    }))  # fmt: skip
    start = len(emulator.audit)
    operator = OperatorProcess(Path(os.pathsep.join([str(first), str(second)])), tmp_path / "operator.log",
                               "--standalone")  # fmt: skip
    try:
        wait_until(operator.healthy, 60, lambda: f"/healthz; log:\n{operator.output()}")
        cluster.create(MODEL_VERSION)
        assert cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", reconciled, timeout=60)

        def made(agent: str, verb: str | None = None) -> bool:
            return any(r.user_agent.startswith(agent) and verb in (None, r.verb) for r in emulator.audit[start:])

        # Our client writes this kind's status, so the status is there before Kopf's own patch after the
        # handler (its bookkeeping in status.kopf): under load that patch comes a moment later.
        wait_until(lambda: made("modelops-operator") and made("kopf", "patch"), 60,
                   lambda: "a request of the operator's own client and Kopf's patch")  # fmt: skip
        ours = [r for r in emulator.audit[start:] if r.user_agent.startswith(("kopf", "modelops-operator"))]
    finally:
        assert operator.stop() == 0
    assert {r.user for r in ours} == {"modelops-exec"}, {(r.user, r.user_agent, r.path) for r in ours}
    # Kopf's own reads and its status patches, and our client's reads, all as the plugin's identity.
    assert {"list", "patch"} <= {r.verb for r in ours if r.user_agent.startswith("kopf")}
    assert {r.code for r in ours} <= {200, 201, 404, 409}
    assert "Traceback" not in operator.output()
    # Once before Kopf starts (the start-up check), once for the run itself.
    assert log.read_text().count("run") == 2


def test_the_operators_client_renews_an_expired_answer_and_after_a_401(emulator: Emulator, tmp_path: Path) -> None:
    token_file, log, plugin = issue(emulator, tmp_path, "tok-a", "alice")
    creds = kubeauth.from_kubeconfig(str(kubeconfig(tmp_path / "config", emulator.url, plugin)))

    async def scenario() -> list[Any]:
        client = Kube(creds)
        try:
            await client.list("v1", "ConfigMap", "default")
            # The token is revoked and a new one issued: the next call is refused, then retried once.
            emulator.handler.users.pop("tok-a")
            emulator.add_user("tok-b", "bob", groups=["system:masters"])
            token_file.write_text("tok-b")
            await client.list("v1", "ConfigMap", "default")
            return [client.connection.authorization]
        finally:
            await client.close()

    start = len(emulator.audit)
    assert asyncio.run(scenario()) == ["Bearer tok-b"]
    assert [(r.user, r.code) for r in emulator.audit[start:]] == [("alice", 200), ("", 401),
                                                                   ("bob", 200)]  # fmt: skip
    assert log.read_text().count("run") == 2


def test_an_answer_that_expired_is_asked_for_again_before_the_request(emulator: Emulator, tmp_path: Path) -> None:
    past = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    token_file, _, plugin = issue(emulator, tmp_path, "tok-a", "alice", expires=past)
    emulator.add_user("tok-b", "bob", groups=["system:masters"])
    creds = kubeauth.from_kubeconfig(str(kubeconfig(tmp_path / "config", emulator.url, plugin)))
    assert creds.connection().expiration is not None

    async def scenario() -> None:
        client = Kube(creds)
        try:
            token_file.write_text("tok-b")  # the plugin now answers bob; nothing was refused
            await client.list("v1", "ConfigMap", "default")
        finally:
            await client.close()

    start = len(emulator.audit)
    asyncio.run(scenario())
    assert [(r.user, r.code) for r in emulator.audit[start:]] == [("bob", 200)]


def test_in_a_pod_the_service_account_is_used_over_tls(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pod's service account as the kubelet mounts it, against the emulator's HTTPS listener with
    its own CA: the operator's client and kubectl modelops both verify the server with that CA (not
    the machine's bundle, which $REQUESTS_CA_BUNDLE names on machines behind a TLS proxy) and send
    the token."""
    from modelops.plugin import client as plugin

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")

    api = emulator.serve_in_cluster("127.0.0.1", tmp_path / "apiserver")
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token\n")
    (account / "ca.crt").write_bytes(api.ca_path.read_bytes())
    (account / "namespace").write_text(NAMESPACE)
    emulator.add_user("sa-token", f"system:serviceaccount:{NAMESPACE}:modelops", groups=["system:masters"])
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port)}
    creds = kubeauth.in_cluster(account, env)
    assert creds is not None
    assert creds.namespace == NAMESPACE

    async def scenario() -> list[dict[str, Any]]:
        client = Kube(creds)
        try:
            return await client.list("v1", "ConfigMap", "default")
        finally:
            await client.close()

    start = len(emulator.audit)
    assert asyncio.run(scenario()) == []
    with pytest.raises(plugin.ApiError, match="not served"):  # no CRDs here: a clear 404
        plugin.Client(creds.connection(), NAMESPACE).list(plugin.MODEL_VERSION)
    assert [r.user for r in emulator.audit[start:]] == [f"system:serviceaccount:{NAMESPACE}:modelops"] * 2


def test_kopf_logs_in_again_with_a_new_answer_after_the_token_is_revoked(
    cluster: KubeClient, emulator: Emulator, tmp_path: Path
) -> None:
    token_file, _, plugin = issue(emulator, tmp_path, "tok-a", "modelops-a")
    config = kubeconfig(tmp_path / "config", emulator.url, plugin)
    operator = OperatorProcess(config, tmp_path / "operator.log", "--standalone")
    try:
        wait_until(operator.healthy, 60, lambda: f"/healthz; log:\n{operator.output()}")
        cluster.create(MODEL_VERSION)
        assert cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1", reconciled, timeout=60)
        # Revoked; the plugin now answers a new token: Kopf's next refusal makes it ask the login
        # handler again, which runs the plugin again rather than hand back what was refused.
        emulator.handler.users.pop("tok-a")
        emulator.add_user("tok-b", "modelops-b", groups=["system:masters"])
        token_file.write_text("tok-b")
        start = len(emulator.audit)
        cluster.patch(API, "ModelVersion", NAMESPACE, "iris-v1", {"spec": {"stage": "Archived"}})
        assert cluster.wait_for(API, "ModelVersion", NAMESPACE, "iris-v1",
                                lambda o: reconciled(o) and o["status"]["stage"] == "Archived", timeout=90)  # fmt: skip
    finally:
        assert operator.stop() == 0
    after = [r for r in emulator.audit[start:] if r.user_agent.startswith(("kopf", "modelops-operator"))]
    refused = [i for i, r in enumerate(after) if r.code == 401]
    assert refused, [(r.user, r.code, r.user_agent) for r in after]
    # Kopf closes its watches when it logs in again; a watch is audited when it ends, as who opened it.
    assert {r.user for r in after[refused[-1] + 1:] if r.verb != "watch"} == {"modelops-b"}
    assert "Traceback" not in operator.output()


def test_the_operators_client_checks_the_server_as_tls_server_name_says(emulator: Emulator, tmp_path: Path) -> None:
    """`localhost` is not in the serving certificate; `kubernetes.default` is: with tls-server-name the
    certificate is checked against that name (what kubectl does through a tunnel or an IP)."""
    api = emulator.serve_in_cluster("127.0.0.1", tmp_path / "apiserver")
    emulator.add_user("tok-t", "tess", groups=["system:masters"])

    def config(name: str | None) -> kubeauth.Credentials:
        cluster: dict[str, Any] = {"server": f"https://localhost:{api.port}", "certificate-authority": str(api.ca_path)}
        if name:
            cluster["tls-server-name"] = name
        path = tmp_path / f"config-{name}"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": cluster}], "users": [{"name": "u", "user": {"token": "tok-t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}],
        }))  # fmt: skip
        return kubeauth.from_kubeconfig(str(path))

    async def configmaps(creds: kubeauth.Credentials) -> int:
        client = Kube(creds)
        try:
            return len(await client.list("v1", "ConfigMap", "default"))
        finally:
            await client.close()

    assert asyncio.run(configmaps(config("kubernetes.default"))) == 0
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        asyncio.run(configmaps(config(None)))


def test_the_operators_client_and_kopfs_login_go_through_the_clusters_proxy_url(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kopf._cogs.structs.credentials import ConnectionInfo  # the type the login handler returns

    from modelops.controller import settings
    from proxykit import forward_proxy

    emulator.add_user("tok-p", "pat", groups=["system:masters"])
    with forward_proxy() as proxy:
        path = tmp_path / "config"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "k", "cluster": {"server": emulator.url, "proxy-url": proxy.url}}],
            "users": [{"name": "u", "user": {"token": "tok-p"}}],
            "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": NAMESPACE}}],
        }))  # fmt: skip

        async def configmaps() -> int:
            client = Kube(kubeauth.from_kubeconfig(str(path)))
            try:
                return len(await client.list("v1", "ConfigMap", "default"))
            finally:
                await client.close()

        assert asyncio.run(configmaps()) == 0
        assert proxy.forwarded == [("GET", f"{emulator.url}/api/v1/namespaces/default/configmaps")]

        monkeypatch.setenv("KUBECONFIG", str(path))  # a new memo is a new run: loaded afresh
        info = asyncio.run(settings._login(memo=kopf.Memo(), logger=logging.getLogger("test")))
        assert isinstance(info, ConnectionInfo)
        assert info.proxy_url == proxy.url
        assert info.server == emulator.url
