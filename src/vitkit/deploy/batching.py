"""Dynamic batching for a server: requests from many clients share one forward pass.

    batcher = DynamicBatcher(model_fn, max_batch=32, max_wait_ms=5)
    probs = await batcher.submit(x)          # x: (C, H, W) → (classes,) probabilities

The first request of a batch waits at most `max_wait_ms` for others (up to `max_batch`); the
batch runs in one worker thread, so the event loop keeps accepting requests meanwhile.
`max_batch=1` turns batching off (each request runs alone).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch


class DynamicBatcher:
    def __init__(self, model_fn: Callable[[torch.Tensor], torch.Tensor], max_batch: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int], None] | None = None):
        self.model_fn, self.max_batch, self.max_wait = model_fn, max(1, max_batch), max(0.0, max_wait_ms) / 1000
        self.on_batch = on_batch or (lambda n: None)
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vitkit-batch")

    def start(self) -> None:
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.pool.shutdown(wait=True)

    async def submit(self, x: torch.Tensor) -> torch.Tensor:
        fut = asyncio.get_running_loop().create_future()
        await self.queue.put((x, fut))
        return await fut

    async def _collect(self) -> list:
        items = [await self.queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(items) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                items.append(await asyncio.wait_for(self.queue.get(), left))
            except asyncio.TimeoutError:
                break
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = await self._collect()
            # Same-size images stack into one batch; a request of another size runs in its own group.
            groups: dict[tuple, list] = {}
            for x, fut in items:
                groups.setdefault(tuple(x.shape), []).append((x, fut))
            for group in groups.values():
                batch = torch.stack([x for x, _ in group])  # (B, C, H, W)
                try:
                    probs = await loop.run_in_executor(self.pool, self.model_fn, batch)
                except RuntimeError as e:  # a failed forward answers its requests, the server goes on
                    for _, fut in group:
                        if not fut.done():
                            fut.set_exception(e)
                    continue
                self.on_batch(len(group))
                for (_, fut), p in zip(group, probs):
                    if not fut.done():
                        fut.set_result(p)
