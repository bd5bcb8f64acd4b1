"""What the TrainingRun watches remember of each run's Job and pods (``trainingruns.Children``)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf

from modelops.controller import runtime
from modelops.controller.trainingruns import (
    OBSERVED_ANNOTATION,
    Children,
    job_digest,
    just_made,
    known_children,
    nudge,
    observed_digest,
)
from modelops.logic.training import RUN_LABEL


def child(kind: str, name: str, run: str | None, phase: str = "Pending") -> dict[str, Any]:
    labels = {RUN_LABEL: run} if run else {}
    return {"kind": kind, "metadata": {"name": name, "namespace": "ml", "labels": labels}, "status": {"phase": phase}}


def test_the_last_state_of_each_child_is_kept_per_run_and_dropped_when_deleted() -> None:
    known = Children()
    assert known.record("ADDED", child("Job", "a-train", "a")) == ("ml", "a")
    assert known.record(None, child("Pod", "a-train-0", "a")) == ("ml", "a")  # the initial listing
    assert known.record("MODIFIED", child("Pod", "a-train-0", "a", "Running")) == ("ml", "a")
    known.record("ADDED", child("Pod", "b-train-0", "b"))
    job, pods = known.of("ml", "a")
    assert job is not None
    assert job["metadata"]["name"] == "a-train"
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    known.record("DELETED", child("Pod", "a-train-0", "a"))
    known.record("DELETED", child("Job", "a-train", "a"))
    assert known.of("ml", "a") == (None, [])
    assert len(known) == 1  # b's pod only: nothing is kept for a
    assert known.record("ADDED", child("Pod", "stray", None)) is None
    assert len(known) == 1


def test_a_deleted_run_is_forgotten_with_its_children() -> None:
    known = Children()
    known.record("ADDED", child("Job", "a-train", "a"))
    known.record("ADDED", child("Pod", "a-train-0", "a"))
    known.forget("ml", "a")
    assert len(known) == 0


def test_one_memory_per_operator_shared_by_every_objects_memo() -> None:
    root = kopf.Memo()
    asyncio.run(runtime.start(memo=root))  # the run's state, which keeps the memory, in the operator's memo
    run_memo, job_memo = copy.copy(root), copy.copy(root)  # Kopf's per-object memos: shallow copies of the root
    assert known_children(run_memo) is known_children(job_memo) is known_children(root)
    assert known_children(kopf.Memo()) is not known_children(root)


def test_the_digest_follows_what_was_seen_and_ticks_only_while_running() -> None:
    known = Children()
    known.record("ADDED", child("Job", "a-train", "a"))
    run: dict[str, Any] = {"metadata": {"name": "a", "namespace": "ml", "annotations": {}}, "status": {}}
    pending = {**run, "status": {"phase": "Pending"}}
    job, pods = known.of("ml", "a")
    assert observed_digest(pending, known) == job_digest(job, pods)  # no clock for a pending run
    running = {**run, "status": {"phase": "Running"}}
    assert observed_digest(running, known) != job_digest(job, pods)
    known.record("ADDED", child("Pod", "a-train-0", "a", "Running"))
    assert observed_digest(pending, known) != job_digest(job, pods)
    assert OBSERVED_ANNOTATION == "modelops.io/observed-job"


def test_a_job_just_made_is_no_news_to_the_run_that_made_it() -> None:
    known = Children()
    known.record("ADDED", child("Job", "a-train", "a") | {"status": {}})
    run: dict[str, Any] = {"metadata": {"name": "a", "namespace": "ml"}, "status": {"phase": "Pending"}}
    assert just_made(*known.of("ml", "a"))
    assert asyncio.run(nudge(run, known)) is False  # no patch: nothing the reconcile did not see
    known.record("DELETED", child("Job", "a-train", "a"))
    assert not just_made(*known.of("ml", "a"))  # a Job gone is news: the run makes it again
    known.record("ADDED", child("Job", "a-train", "a") | {"status": {}})
    known.record("ADDED", child("Pod", "a-train-0", "a"))
    assert not just_made(*known.of("ml", "a"))
