"""Fixtures of the image tier: the image built from this checkout, and a node that runs pods from it.

``image``: the image to test, named by ``MODELOPS_IMAGE`` (``make test-image`` builds it and sets
it); the tier skips with the reason when it is not set, when Docker cannot run here or when the
image is not on this machine — or fails instead under ``MODELOPS_IMAGE_REQUIRE=1`` (CI).
``node``: the emulator with our CRDs and the tests' namespace, made into a one-node cluster whose
pods run as containers from the image (tests/containerkubelet); the test fails if the node
refused a field or failed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from containerkubelet import Node, docker
from kubeemu import Emulator
from kubeemu.client import KubeClient

NAMESPACE = "ml"


def give_up(reason: str) -> NoReturn:
    """Skip with the reason, or fail with it under MODELOPS_IMAGE_REQUIRE=1."""
    if os.environ.get("MODELOPS_IMAGE_REQUIRE", "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(f"MODELOPS_IMAGE_REQUIRE is set, and: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def image() -> str:
    name = os.environ.get("MODELOPS_IMAGE", "").strip()
    if not name:
        give_up("the image tier runs with `make test-image` (it builds the image and names it in MODELOPS_IMAGE)")
    reason = docker.unavailable()
    if reason is not None:
        give_up(f"Docker cannot run containers here: {reason}")
    if docker.image(name) is None:
        give_up(f"the image {name} is not on this machine (make image IMAGE={name})")
    return name


@pytest.fixture
def node(image: str, emulator: Emulator, cluster: KubeClient, tmp_path: Path) -> Iterator[Node]:
    """A one-node cluster for the tests' namespace: its pods run as containers from ``image``."""
    running = Node(emulator, image=image, namespaces=[NAMESPACE], workdir=tmp_path / "node").start()
    try:
        yield running
    finally:
        running.close()
    assert running.errors == [], running.errors
