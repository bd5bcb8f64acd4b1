"""The Docker engine, through its command-line client: what the container kubelet stand-in asks of it.

Every call is one ``docker`` process; a failure raises :class:`DockerError` with Docker's own
message. :func:`unavailable` says why Docker cannot be used here (no client, no daemon), or None.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import socket
import struct
import subprocess
from collections.abc import Sequence
from typing import Any

BRIDGE = "bridge"


class DockerError(Exception):
    """A ``docker`` command failed; the message is Docker's."""


def _docker(args: Sequence[str], *, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise DockerError(f"docker {args[0]} timed out after {timeout:g}s") from error
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args[:2])}: {result.stderr.strip() or result.stdout.strip()}")
    return result


def unavailable() -> str | None:
    """Why containers cannot run here (the reason), or None when the Docker daemon answers."""
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    try:
        result = _docker(["info", "--format", "{{json .ServerVersion}}"], timeout=30, check=False)
    except DockerError as error:
        return str(error)
    if result.returncode != 0:
        return f"the Docker daemon does not answer: {result.stderr.strip()[:300]}"
    return None


def bridge_gateway() -> str:
    """The host's address on Docker's default bridge: where containers reach servers on the host."""
    network = json.loads(_docker(["network", "inspect", BRIDGE]).stdout)[0]
    for config in (network.get("IPAM") or {}).get("Config") or []:
        if config.get("Gateway"):
            return str(config["Gateway"])
    # The default bridge often names no gateway: it is the address of the bridge's interface.
    interface = (network.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", interface.encode()[:15]))  # SIOCGIFADDR
        except OSError as error:
            raise DockerError(f"the bridge {interface} has no IPv4 address: {error}") from None
    return socket.inet_ntoa(packed[20:24])


def image(reference: str) -> dict[str, Any] | None:
    """The local image's inspection (Id, Config …), or None when it is not on this machine."""
    result = _docker(["image", "inspect", reference], check=False)
    if result.returncode != 0:
        return None
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found[0] if found else None


def run(args: Sequence[str]) -> str:
    """``docker run -d …``: the new container's id."""
    return _docker(["run", "-d", *args]).stdout.strip()


def inspect(container: str) -> dict[str, Any] | None:
    """The container's inspection, or None when it is gone."""
    result = _docker(["container", "inspect", container], check=False)
    if result.returncode != 0:
        return None
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found[0] if found else None


def stop(container: str, grace: int) -> None:
    """SIGTERM (the image's stop signal), then SIGKILL after ``grace`` seconds."""
    _docker(["stop", "-t", str(grace), container], timeout=grace + 60, check=False)


def remove(container: str) -> None:
    _docker(["rm", "-f", "-v", container], check=False)


def logs(container: str, *, tail: int | None = None) -> str:
    """stdout and stderr of the container, interleaved as Docker kept them."""
    args = ["logs", *(["--tail", str(tail)] if tail is not None else []), container]
    result = _docker(args, check=False)
    return result.stdout + result.stderr


def exec_(container: str, command: Sequence[str], timeout: float) -> int:
    """Run a command in the container (an exec probe); its exit code, or -1 on a timeout."""
    try:
        return _docker(["exec", container, *command], timeout=timeout, check=False).returncode
    except DockerError:
        return -1


def containers(label: str) -> list[str]:
    """Ids of the containers (running or not) that carry the label."""
    out = _docker(["ps", "-a", "-q", "--filter", f"label={label}"]).stdout
    return out.split()
