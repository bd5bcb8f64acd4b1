"""What one operator run holds: its credentials, its API client, its locks and pending looks.

All of it lives in Kopf's ``memo`` (``memo.runtime``), never in module globals: several
operators may run in one process (the tests run one per test, each in its own event loop),
and each gets its own. The memo Kopf passes to a resource's handlers is a shallow copy of the
operator-wide one, so every handler sees the same :class:`Runtime`.

Code called from a handler reaches it with :func:`current`: every handler is registered through
:func:`bound`, which puts the run's state from the handler's memo in a context variable for as
long as the handler runs (tasks the handler starts copy the context, and so see it too). A pending look
at an object is dropped by :meth:`Runtime.forget` when the object is deleted; a lock lives only
while someone holds or awaits it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import weakref
from collections.abc import Callable, Coroutine, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import kopf

from modelops import kubeauth
from modelops.controller.kube import Kube

T = TypeVar("T")
Handler = TypeVar("Handler", bound=Callable[..., Any])


class ShuttingDownError(RuntimeError):
    """The operator closed its API client: nothing more is sent from this run."""


@dataclass
class Runtime:
    """One operator run's state; made at start-up (or at Kopf's first login), closed at clean-up."""

    # Where credentials come from: `modelops operator --kubeconfig/--context` (None: kubectl's order,
    # the pod's service account first).
    kubeconfig: str | None = None
    context: str | None = None
    creds: kubeauth.Credentials | None = None
    closed: bool = False
    _kube: Kube | None = None
    # (scope, …) → lock, kept only while someone holds or awaits it (so nothing to prune).
    _locks: weakref.WeakValueDictionary[tuple[Hashable, ...], asyncio.Lock] = field(
        default_factory=weakref.WeakValueDictionary
    )
    # (kind, namespace, name) → the pending look at the object (controller/requeue.py).
    pending: dict[tuple[str, str, str], asyncio.Task[None]] = field(default_factory=dict)
    # What a kind's module keeps for the whole run (see :meth:`kept`), by the module's own name for it.
    _kept: dict[str, Any] = field(default_factory=dict)
    # Background work of the whole run (see :meth:`spawn`), cancelled at close.
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def credentials(self) -> kubeauth.Credentials:
        """This run's credentials, loaded on first use (a pod's service account before any kubeconfig).

        Loading may run an exec plugin: callers on the event loop that can wait call it in a thread."""
        if self.creds is None:
            self.creds = kubeauth.load(self.kubeconfig, self.context, in_cluster_first=True)
        return self.creds

    @property
    def kube(self) -> Kube:
        """The run's API client, made on first use."""
        if self.closed:
            raise ShuttingDownError("the operator is shutting down: its Kubernetes API client is closed")
        if self._kube is None:
            self._kube = Kube(self.credentials())
        return self._kube

    def kept(self, name: str, make: Callable[[], T]) -> T:
        """The run's one ``name`` (made by ``make`` on first use): memory a kind's handlers share, such as the
        children the watches delivered or the last read of a Secret."""
        found = self._kept.get(name)
        if found is None:
            found = self._kept[name] = make()
        return cast(T, found)

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``work`` in the background for the run's life (in the caller's context: a handler's run state)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def lock(self, *key: Hashable) -> asyncio.Lock:
        """The lock named by ``key`` (a scope, then what it is about), e.g. ``("feedback-keys", namespace)``."""
        found = self._locks.get(key)
        if found is None:
            found = self._locks[key] = asyncio.Lock()
        return found

    def forget(self, kind: str, namespace: str, name: str) -> None:
        """Drop what is kept for a deleted object: its pending look."""
        task = self.pending.pop((kind, namespace, name), None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def close(self) -> None:
        self.closed = True
        for task in [*self.pending.values(), *self._tasks]:
            task.cancel()
        self.pending.clear()
        self._locks.clear()
        if self._kube is not None:
            await self._kube.close()
            self._kube = None
        self.creds = None


def of(memo: Any) -> Runtime:
    """The run's state in a Kopf memo, put there on first use."""
    found = getattr(memo, "runtime", None)
    if not isinstance(found, Runtime):
        found = Runtime()
        memo.runtime = found
    return found


# The run whose handler is running: set by :func:`bound` around each handler, unset anywhere else.
_running: contextvars.ContextVar[Runtime] = contextvars.ContextVar("modelops_runtime")


@contextlib.contextmanager
def _entered(memo: Any) -> Iterator[None]:
    """The run in ``memo`` is :func:`current` inside the block (with no memo, nothing changes)."""
    if memo is None:
        yield
        return
    token = _running.set(of(memo))
    try:
        yield
    finally:
        _running.reset(token)


def bound(fn: Handler) -> Handler:
    """``fn`` as a Kopf handler that sees its run's state through :func:`current` while it runs.

    The state comes from the ``memo`` Kopf passes every handler; called without one (a test calling the
    function itself), ``fn`` runs as it is. The wrapper is a coroutine function exactly when ``fn`` is
    one, so Kopf still runs a plain function in its executor (in a copy of this context)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            with _entered(kwargs.get("memo")):
                return await fn(*args, **kwargs)

        return cast(Handler, run_async)

    @functools.wraps(fn)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        with _entered(kwargs.get("memo")):
            return fn(*args, **kwargs)

    return cast(Handler, run_sync)


def current() -> Runtime:
    """The state of the operator run whose handler is calling (see :func:`bound`)."""
    found = _running.get(None)
    if found is None:
        raise RuntimeError(
            "no Kopf handler is running here: the operator's state is reached only from handlers "
            "registered through runtime.bound"
        )
    return found


def kube() -> Kube:
    """The API client of the operator run whose handler is calling."""
    return current().kube


async def start(memo: kopf.Memo, **_: Any) -> None:
    """Start-up: the run's state in the operator-wide memo, before any resource's memo copies it."""
    of(memo)


async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Clean-up: pending looks cancelled, the client closed; a handler still running gets no new one."""
    await of(memo).close()


def register(registry: kopf.OperatorRegistry) -> None:
    kopf.on.startup(registry=registry, id="runtime-start")(bound(start))
    kopf.on.cleanup(registry=registry, id="runtime-stop")(bound(stop))
