"""Dynamic batching: requests that arrive together are answered by one model call.

Each request's input waits in a queue. One task on the event loop takes the first waiting
input, then every other one already queued; when the batcher was idle it keeps collecting
until the batch holds ``max_batch`` rows or ``max_wait_ms`` has passed since the first. The
batch then runs on one worker thread (off the event loop, which keeps reading requests) and
each request gets its own rows back. While a batch runs, the next one gathers, and it goes as
soon as the model is free (the model call was its wait): under load, batches grow by themselves
and the model never idles waiting for stragglers.
With batching off every request is its own model call, one at a time, on the same thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Batcher", "BatchStats"]


@dataclass
class BatchStats:
    """What the batcher has done (shown by /metadata)."""

    requests: int = 0
    rows: int = 0
    model_calls: int = 0
    largest_batch: int = 0
    model_seconds: float = 0.0
    batch_sizes: dict = field(default_factory=dict)  # rows per call -> calls

    def describe(self) -> dict:
        return {"requests": self.requests, "rows": self.rows, "model_calls": self.model_calls,
                "largest_batch": self.largest_batch,
                "mean_batch": round(self.rows / self.model_calls, 2) if self.model_calls else 0.0,
                "model_seconds": round(self.model_seconds, 4)}


class Batcher:
    """Runs ``model(collate([inputs...]))`` for groups of concurrent requests.

    ``submit(x)`` (a coroutine) returns the model's rows for ``x``. Requests larger than
    ``max_batch`` run alone. The queue and the collecting task belong to the event loop that
    first submits (a service's loop); the model always runs on one dedicated thread.
    """

    def __init__(self, model: Callable[[Any], np.ndarray], *, max_batch: int = 64,
                 max_wait_ms: float = 2.0, enabled: bool = True,
                 collate: Callable[[list], Any] = np.concatenate) -> None:
        self.model, self.collate = model, collate
        self.max_batch, self.max_wait = max(1, int(max_batch)), max(0.0, max_wait_ms) / 1000
        self.enabled = enabled and self.max_batch > 1
        self.stats = BatchStats()
        self._executor: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _run(self, batch: Any, rows: int) -> np.ndarray:
        start = time.perf_counter()
        out = self.model(batch)
        self.stats.model_seconds += time.perf_counter() - start
        if not isinstance(out, np.ndarray) or out.ndim < 1 or len(out) != rows:
            shape = getattr(out, "shape", type(out).__name__)
            raise RuntimeError(f"the model returned {shape} for a batch of {rows} rows; expected "
                               f"one output row per input row.")
        return out

    def _count(self, rows: int) -> None:
        self.stats.model_calls += 1
        self.stats.rows += rows
        self.stats.largest_batch = max(self.stats.largest_batch, rows)
        self.stats.batch_sizes[rows] = self.stats.batch_sizes.get(rows, 0) + 1

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:  # made on first use: an app can be started, stopped, started
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="netwright-model")
        return self._executor

    async def submit(self, x: Any) -> np.ndarray:
        """The model's outputs for ``x`` (a batch of one request's rows)."""
        self.stats.requests += 1
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a server started again): new queue, lock
            self._fail_waiting(RuntimeError("the batcher was restarted"))
            self._loop, self._lock, self._queue, self._task = loop, asyncio.Lock(), None, None
        if not self.enabled:
            async with self._lock:  # one model call at a time, in arrival order
                self._count(len(x))
                return await loop.run_in_executor(self._pool(), self._run, x, len(x))
        if self._task is None or self._task.done():
            self._fail_waiting(RuntimeError("the batcher was restarted"))
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._collect(self._queue), name="netwright-batcher")
        future = loop.create_future()
        await self._queue.put((x, future))
        return await future

    def _fail_waiting(self, exc: BaseException) -> None:
        """Every request still queued gets ``exc`` (none waits forever)."""
        queue = self._queue
        while queue is not None and not queue.empty():
            _, future = queue.get_nowait()
            if not future.done():
                try:
                    future.set_exception(exc)
                except RuntimeError:  # its event loop is closed: nobody waits on it any more
                    pass

    async def _collect(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        held = None  # an input that did not fit the last batch: it starts the next
        while True:
            # Idle (nothing queued): the first request waits up to max_wait for company. Right
            # after a model call, what queued meanwhile goes at once: the call was the wait.
            idle = held is None and queue.empty()
            first = held if held is not None else await queue.get()
            held, items = None, [first]
            try:
                rows = len(first[0])
                deadline = loop.time() + (self.max_wait if idle else 0.0)
                while rows < self.max_batch:
                    try:
                        item = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        left = deadline - loop.time()
                        if left <= 0:
                            break
                        try:
                            item = await asyncio.wait_for(queue.get(), left)
                        except asyncio.TimeoutError:
                            break
                    if rows + len(item[0]) > self.max_batch:
                        held = item
                        break
                    items.append(item)
                    rows += len(item[0])
                items = [(x, f) for x, f in items if not f.done()]  # a client that went away
                if not items:
                    continue
                rows = sum(len(x) for x, _ in items)
                self._count(rows)
                out = await loop.run_in_executor(self._pool(), self._run,
                                                 self.collate([x for x, _ in items]), rows)
                start = 0
                for x, f in items:
                    if not f.done():
                        f.set_result(out[start:start + len(x)])
                    start += len(x)
            except asyncio.CancelledError:
                for _, f in items + ([held] if held is not None else []):
                    if not f.done():
                        f.set_exception(RuntimeError("the service is shutting down"))
                raise
            except Exception as exc:  # noqa: BLE001 - every request of this batch gets the error;
                # the batcher itself goes on with the next one.
                for _, f in items:
                    if not f.done():
                        f.set_exception(exc)

    def close(self) -> None:
        """Stop collecting and let the model thread go; the next request starts both again."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._fail_waiting(RuntimeError("the service is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
