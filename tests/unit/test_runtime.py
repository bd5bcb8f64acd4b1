"""An operator run's state in Kopf's memo: one per memo, locks that go when unused, pruning on delete."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def whose() -> runtime.Runtime:
    """A helper a handler calls, which knows nothing of the handler's memo."""
    return runtime.current()


async def test_a_helper_called_from_a_bound_handler_finds_its_run_and_nothing_is_left_after() -> None:
    memo = kopf.Memo()
    seen: list[runtime.Runtime] = []

    async def later() -> runtime.Runtime:
        return whose()

    async def handler(**_: Any) -> str:
        seen.append(whose())
        # A task the handler starts copies its context, and so sees the same run.
        seen.append(await asyncio.create_task(later()))
        return "done"

    assert await runtime.bound(handler)(memo=memo, name="x") == "done"
    assert seen == [runtime.of(memo), runtime.of(memo)]
    with pytest.raises(RuntimeError, match="no Kopf handler"):
        runtime.current()


async def test_two_runs_handlers_interleaved_on_one_loop_each_see_their_own() -> None:
    first, second = kopf.Memo(), kopf.Memo()
    both_in = asyncio.Barrier(2)

    @runtime.bound
    async def handler(**_: Any) -> runtime.Runtime:
        before = whose()
        await both_in.wait()  # both handlers are inside before either looks again
        assert whose() is before
        return before

    got = await asyncio.gather(handler(memo=first), handler(memo=second))
    assert got == [runtime.of(first), runtime.of(second)]
    assert got[0] is not got[1]


async def test_a_plain_handler_stays_plain_and_sees_its_run_in_the_executor() -> None:
    memo = kopf.Memo()

    def handler(**_: Any) -> runtime.Runtime:
        return whose()

    wrapped = runtime.bound(handler)
    # Kopf runs a plain function in its executor and awaits a coroutine function: the kind must not change.
    assert not inspect.iscoroutinefunction(wrapped)
    assert inspect.iscoroutinefunction(runtime.bound(asyncio.sleep))
    assert wrapped.__name__ == "handler"
    context = contextvars.copy_context()  # as Kopf does for its executor
    found = await asyncio.get_running_loop().run_in_executor(None, lambda: context.run(wrapped, memo=memo))
    assert found is runtime.of(memo)


def test_every_handler_the_operator_registers_is_bound(tmp_path: Path) -> None:
    from modelops.controller import handlers, webhooks

    registry = handlers.registry(webhook=webhooks.WebhookOptions(port=1, cert_dir=str(tmp_path), host="127.0.0.1"))
    # Kopf keeps one sub-registry per kind of handler (activities, watching, spawning, changing, webhooks).
    found = [h for sub in vars(registry).values() if hasattr(sub, "get_all_handlers") for h in sub.get_all_handlers()]
    wrappers = {"bound.<locals>.run_async", "bound.<locals>.run_sync"}
    assert len(found) > 40  # all of them, not an empty registry
    assert [h.id for h in found if h.fn.__code__.co_qualname not in wrappers] == []


def test_a_bound_handler_called_without_a_memo_runs_as_it_is() -> None:
    assert runtime.bound(lambda **kwargs: sorted(kwargs))(name="x") == ["name"]


@pytest.mark.parametrize(
    "module", ["requeue", "framework", "common", "runtime", "trainingruns", "modeldeployments", "handlers"]
)
def test_every_controller_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    # The old cycle common → framework → requeue → common, if it came back, breaks one of these orders.
    done = subprocess.run(
        [sys.executable, "-c", f"import modelops.controller.{module}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
