"""An operator run's state in Kopf's memo: one per memo, locks that go when unused, pruning on delete."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys

import kopf
import pytest

from modelops.controller import runtime


def test_each_memo_gets_its_own_runtime_and_keeps_it() -> None:
    first, second = kopf.Memo(), kopf.Memo()
    assert runtime.of(first) is runtime.of(first)
    assert runtime.of(first) is not runtime.of(second)


async def test_a_lock_is_shared_while_held_and_gone_when_nobody_uses_it() -> None:
    state = runtime.Runtime()
    lock = state.lock("production", "ml", "iris")
    async with lock:
        assert state.lock("production", "ml", "iris") is lock
        assert state.lock("production", "ml", "wine") is not lock
    del lock
    gc.collect()
    assert len(state._locks) == 0


async def test_forgetting_a_deleted_object_cancels_its_pending_look_only() -> None:
    state = runtime.Runtime()
    mine = asyncio.create_task(asyncio.sleep(60))
    other = asyncio.create_task(asyncio.sleep(60))
    state.pending[("ModelDeployment", "ml", "iris")] = mine
    state.pending[("ModelDeployment", "ml", "wine")] = other
    state.forget("ModelDeployment", "ml", "iris")
    await asyncio.sleep(0)
    assert mine.cancelled()
    assert not other.done()
    assert list(state.pending) == [("ModelDeployment", "ml", "wine")]
    other.cancel()


async def test_a_closed_runtime_hands_out_no_client() -> None:
    state = runtime.Runtime()
    await state.close()
    with pytest.raises(runtime.ShuttingDownError):
        _ = state.kube


def test_outside_a_handler_there_is_no_current_run() -> None:
    with pytest.raises(RuntimeError, match="no Kopf handler"):
        runtime.current()


@pytest.mark.parametrize(
    "module", ["requeue", "framework", "common", "runtime", "trainingruns", "modeldeployments", "handlers"]
)
def test_every_controller_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    # The old cycle common → framework → requeue → common, if it came back, breaks one of these orders.
    done = subprocess.run(
        [sys.executable, "-c", f"import modelops.controller.{module}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
