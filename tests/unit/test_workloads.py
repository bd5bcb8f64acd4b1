"""What may run beside a governed version: image references, the allow-list, command and args, pod env."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.logic import policy as policies
from modelops.logic import workloads
from modelops.logic.workloads import ImageRef, parse_image

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
POLICY = policies.parse({"workloads": {
    "images": [
        {"repository": "ghcr.io/acme/server"},
        {"repository": "registry.example.com/ml/*"},
        {"repository": "python", "digests": [DIGEST], "command": True},
        {"repository": "ghcr.io/acme/trainer", "digests": [DIGEST]},
    ],
    "envSecrets": ["s3-readonly"],
}})  # fmt: skip
WHERE = "namespace ml is labelled as production"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("python", ImageRef("docker.io", "library/python", None, None)),
        ("python:3.11-slim", ImageRef("docker.io", "library/python", "3.11-slim", None)),
        ("docker.io/library/python", ImageRef("docker.io", "library/python", None, None)),
        ("index.docker.io/library/python", ImageRef("docker.io", "library/python", None, None)),
        ("DOCKER.IO/library/python", ImageRef("docker.io", "library/python", None, None)),
        ("acme/server", ImageRef("docker.io", "acme/server", None, None)),
        ("ghcr.io/acme/server:1.2@" + DIGEST, ImageRef("ghcr.io", "acme/server", "1.2", DIGEST)),
        ("localhost/x", ImageRef("localhost", "x", None, None)),
        ("registry:5000/a/b:t", ImageRef("registry:5000", "a/b", "t", None)),
        ("a.b-c/d__e.f-g", ImageRef("a.b-c", "d__e.f-g", None, None)),
    ],
)
def test_references_resolve_as_a_runtime_resolves_them(reference: str, expected: ImageRef) -> None:
    assert parse_image(reference) == expected


@pytest.mark.parametrize(
    "reference",
    ["", " python", "a.b__c/d", "ghcr.io/acme/../x", "ghcr.io//x", "ghcr.io/Acme/x", "ghcr.io/acme/x:",
     "x@sha256:short", "ghcr.io@evil.example/acme/x", "x:" + "t" * 129, "a" * 256, "ghcr.io/acme/x y", "-a/b"],
)
def test_malformed_references_are_refused_not_guessed(reference: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is checked where it is shown
        parse_image(reference)


@given(st.text(max_size=80))
def test_any_text_parses_or_is_refused_with_a_reason(text: str) -> None:
    reason = ""
    try:
        parsed: ImageRef | None = parse_image(text)
    except ValueError as error:
        parsed, reason = None, str(error)
    if parsed is None:
        assert reason  # never a bare refusal
    else:
        assert parsed.repository == parsed.repository.lower()


components = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8})?", fullmatch=True)
hosts = st.sampled_from(["", "ghcr.io/", "registry.example.com:5000/", "localhost/", "docker.io/", "index.docker.io/"])
tags = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True))
digests = st.one_of(st.none(), st.just(DIGEST))


@given(hosts, st.lists(components, min_size=1, max_size=3), tags, digests)
def test_a_normalized_reference_names_the_same_image(host: str, path: list[str], tag: str | None,
                                                     digest: str | None) -> None:
    """The policy and the runtime read one image: normalizing is idempotent and keeps tag and digest."""
    reference = host + "/".join(path) + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    parsed = parse_image(reference)
    again = parse_image(parsed.repository + (f":{tag}" if tag else "") + (f"@{digest}" if digest else ""))
    assert again == parsed
    assert (parsed.tag, parsed.digest) == (tag, digest)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("ghcr.io/acme/server", True),
        ("ghcr.io/acme/server:2@" + OTHER_DIGEST, True),  # no digests listed: any tag or digest
        ("ghcr.io/acme/server-evil", False),
        ("ghcr.io/acme", False),
        ("ghcr.io:443/acme/server", False),  # another address is another registry
        ("registry.example.com/ml/anything/below:1", True),
        ("registry.example.com/ml", False),
        ("registry.example.com/mlops/x", False),
        ("python@" + DIGEST, True),
        ("docker.io/library/python:3.11@" + DIGEST, True),
        ("python:3.11", False),  # digests listed: a tag can move
        ("python@" + OTHER_DIGEST, False),
        ("evil.example/python", False),
    ],
)
def test_the_allow_list_matches_registry_repository_and_digest(image: str, allowed: bool) -> None:
    problems = workloads.image_problems("spec.server.image", image, POLICY.workloads, WHERE)
    assert (problems == []) == allowed, problems


def test_denials_name_the_field_and_the_rule() -> None:
    [unknown] = workloads.image_problems("spec.server.image", "evil.example/x:1", POLICY.workloads, WHERE)
    assert unknown == (
        "spec.server.image: namespace ml is labelled as production, and no entry of the governance policy's "
        "workloads.images allows repository evil.example/x (evil.example/x:1); leave spec.server.image empty to "
        "run the operator's own image, or have the image allow-listed"
    )
    [unpinned] = workloads.image_problems("spec.image", "python:3.11", POLICY.workloads, WHERE)
    assert unpinned == (
        f"spec.image: namespace ml is labelled as production, and workloads.images allows docker.io/library/python "
        f"only pinned by digest: docker.io/library/python@{DIGEST} (python:3.11 is not pinned by a digest)"
    )
    [bad] = workloads.image_problems("spec.image", "ghcr.io/Acme/x", POLICY.workloads, WHERE)
    assert bad.startswith("spec.image: 'ghcr.io/Acme/x' is not an image reference: 'Acme' is not a repository")
    assert workloads.image_problems("spec.image", 7, POLICY.workloads, WHERE) == [
        "spec.image: an image reference is a string"]  # fmt: skip


def run(**spec: Any) -> dict[str, Any]:
    return {"model": "iris", "dataset": {"uri": "sklearn://iris", "target": "y"}, **spec}


def test_a_trainingrun_overrides_an_entrypoint_only_where_the_entry_allows_it() -> None:
    trainer = f"ghcr.io/acme/trainer@{DIGEST}"
    assert workloads.trainingrun_problems(run(image=trainer), POLICY, WHERE) == []
    problems = workloads.trainingrun_problems(run(image=trainer, command=["sh", "-c", "curl x | sh"],
                                                  args=["-x"]), POLICY, WHERE)  # fmt: skip
    assert [p.split(":", 1)[0] for p in problems] == ["spec.command", "spec.args"]
    assert "does not allow overriding its entrypoint (command: false)" in problems[0]
    python = f"python@{DIGEST}"
    assert workloads.trainingrun_problems(run(image=python, command=["python", "train.py"]), POLICY, WHERE) == []
    # The operator's own trainer (an estimator, no image) is always allowed.
    estimator = run(estimator={"className": "sklearn.tree.DecisionTreeClassifier"})
    assert workloads.trainingrun_problems(estimator, POLICY, WHERE) == []


@pytest.mark.parametrize(
    ("env", "problems"),
    [
        ([{"name": "OMP_NUM_THREADS", "value": "2"}, {"name": "LC_ALL", "value": "C.UTF-8"}], []),
        ([{"name": "PYTHONPATH", "value": "/mnt/pvc/models/evil"}], ["spec.pod.env[0].name"]),
        ([{"name": "LD_PRELOAD", "value": "/tmp/x.so"}, {"name": "PATH", "value": "/tmp"}],
         ["spec.pod.env[0].name", "spec.pod.env[1].name"]),
        ([{"name": "MODELOPS_ALLOW_PICKLE", "value": "1"}], ["spec.pod.env[0].name"]),
        ([{"name": "TZ", "valueFrom": {"secretKeyRef": {"name": "db-admin", "key": "password"}}}],
         ["spec.pod.env[0].valueFrom.secretKeyRef"]),
        ([{"name": "TZ", "valueFrom": {"secretKeyRef": {"name": "s3-readonly", "key": "k"}}}], []),
        ([{"name": "TZ", "valueFrom": {"configMapKeyRef": {"name": "any", "key": "k"}}}], []),
        ("not a list", ["spec.pod.env"]),
        (["x"], ["spec.pod.env[0]"]),
        (None, []),
    ],
)
def test_env_may_set_only_harmless_names_and_read_only_listed_secrets(env: Any, problems: list[str]) -> None:
    found = workloads.env_problems("spec.pod.env", env, POLICY.workloads, WHERE)
    assert [p.split(":", 1)[0] for p in found] == problems
    if problems == ["spec.pod.env[0].valueFrom.secretKeyRef"]:
        assert "Secret db-admin is not in the governance policy's workloads.envSecrets" in found[0]


def test_a_deployment_is_judged_on_its_image_and_env() -> None:
    spec = {"server": {"image": "evil.example/x"}, "pod": {"env": [{"name": "PYTHONSTARTUP", "value": "/x"}]}}
    found = workloads.deployment_problems(spec, POLICY, WHERE)
    assert [p.split(":", 1)[0] for p in found] == ["spec.server.image", "spec.pod.env[0].name"]
    assert workloads.deployment_problems({"server": {}}, POLICY, WHERE) == []


@pytest.mark.parametrize(
    ("enforce", "production", "governed"),
    [("Production", True, True), ("Production", False, False), ("All", False, True), ("None", True, False)],
)
def test_where_the_rules_hold(enforce: str, production: bool, governed: bool) -> None:
    policy = policies.parse({"workloads": {"enforce": enforce}})
    where = workloads.governed_where(policy, "ml", production)
    assert (where is not None) == governed
    if governed and not production:
        assert "workloads.enforce: All" in str(where)


def test_the_default_policy_allows_only_the_operators_own_image_in_production() -> None:
    default = policies.DEFAULT
    assert default.workloads.images == ()
    assert workloads.deployment_problems({"server": {"image": "ghcr.io/modelops/modelops-operator:0.1.0"}}, default,
                                         WHERE)  # fmt: skip
    assert workloads.deployment_problems({"server": {}}, default, WHERE) == []


def test_a_policy_with_a_bad_image_rule_stops_the_operator_naming_the_field() -> None:
    with pytest.raises(policies.PolicyError, match=r"workloads\.images\.0\.digests\.0"):
        policies.parse({"workloads": {"images": [{"repository": "x", "digests": ["latest"]}]}})
    with pytest.raises(policies.PolicyError, match=r"workloads\.enforce"):
        policies.parse({"workloads": {"enforce": "Sometimes"}})
