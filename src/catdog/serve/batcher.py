"""Dynamic batching: single-image requests that arrive together run on the model as ONE batch.

A model call on 16 images costs far less than 16 calls on one, so under load the server groups waiting
requests instead of queueing them one by one. The oldest waiting request waits at most `wait_ms` for
company (or until `max_batch` are waiting); while the model runs in its worker thread, new requests pile
up and form the next batch, so batches grow with load on their own. The event loop never runs the model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

log = logging.getLogger("catdog.serve")


class BatcherStopped(RuntimeError):
    """The batcher stopped (server shutting down) before this request's batch ran."""


class DynamicBatcher:
    """Collects (image -> row of fn's output) requests into batches for `fn`.

    Args:
        fn: float32 (N, H, W, 3) -> array (N, ...); runs in one worker thread, one batch at a time.
        max_batch: largest batch handed to `fn`. Defaults to `32`; `1` turns batching off.
        wait_ms: how long the oldest waiting request may wait for others. Defaults to `5`.
    """

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], *, max_batch: int = 32, wait_ms: float = 5.0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if wait_ms < 0:
            raise ValueError(f"wait_ms must be >= 0, got {wait_ms}")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.wait_s = float(wait_ms) / 1000.0
        self.batch_sizes: Counter[int] = Counter()  # batch size -> how many batches; for /health and tests
        self._pending: list[tuple[np.ndarray, asyncio.Future, float]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def queued(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Start the collector on the running event loop (call from the app's lifespan)."""
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catdog-model")
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="catdog-batcher")

    async def stop(self) -> None:
        """Stop collecting; requests still waiting get an error instead of hanging."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for _, future, _ in self._pending:
            if not future.done():
                future.set_exception(BatcherStopped("the server is shutting down"))
        self._pending = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def submit(self, image: np.ndarray) -> np.ndarray:
        """Queue one image (H, W, 3); return its row of fn's output once its batch has run."""
        if not self.running:
            raise BatcherStopped("the batcher is not running (start it in the app's lifespan)")
        future = asyncio.get_running_loop().create_future()
        self._pending.append((image, future, time.perf_counter()))
        self._wakeup.set()
        return await future

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            # Wait for company until the oldest request has waited wait_s or the batch is full.
            while len(self._pending) < self.max_batch:
                remaining = self._pending[0][2] + self.wait_s - time.perf_counter()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)  # an Event wait loses nothing when cancelled
                except TimeoutError:
                    break
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            batch = [item for item in batch if not item[1].done()]  # the client may have gone away
            if not batch:
                continue
            images = np.stack([image for image, _, _ in batch])
            try:
                outputs = await loop.run_in_executor(self._executor, self.fn, images)
                if len(outputs) != len(batch):
                    raise ValueError(f"the model returned {len(outputs)} rows for a batch of {len(batch)}")
            except asyncio.CancelledError:  # stop() while a batch runs: its requests must not hang
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(BatcherStopped("the server is shutting down"))
                raise
            except Exception as e:  # noqa: BLE001 - every waiting request gets the error; the server keeps serving
                log.exception("model failed on a batch of %d", len(batch))
                for _, future, _ in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            self.batch_sizes[len(batch)] += 1
            for (_, future, _), row in zip(batch, outputs):
                if not future.done():
                    future.set_result(row)
