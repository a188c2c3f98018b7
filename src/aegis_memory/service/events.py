"""Write-behind for query events.

Every query appends a retrieval event (SPEC §5), but making each search wait for a write
transaction would put the database's commit latency on the read path. Query events are queued
and written in batches by one background task instead; the event id is chosen up front, so the
response can name it before it is stored. ``flush`` waits until everything queued is written
(readers of the timeline call it first); ``close`` flushes and stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aegis_memory.store import Store
from aegis_memory.store.records import EventRecord

log = logging.getLogger("aegis_memory.events")

MAX_BATCH = 500


class EventWriter:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: asyncio.Queue[EventRecord] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def submit(self, event: EventRecord) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="aegis-event-writer")
        self._queue.put_nowait(event)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self.store.add_events(batch)
            except Exception as exc:  # one bad batch must not stop the writer
                # A database error's text lists the statement's parameters, here people's
                # search queries: log the driver's own error, without them or a traceback.
                orig = getattr(exc, "orig", None)
                log.error("could not write %d query events: %r", len(batch), orig or exc,
                          exc_info=orig is None)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def flush(self) -> None:
        await self._queue.join()

    async def close(self) -> None:
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
