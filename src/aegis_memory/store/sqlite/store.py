"""SQLite flavour of the SQL store: the embedded default, one file, zero set-up.

SQLite allows one writer at a time. Writes run on a single dedicated thread with a connection
whose transactions start with ``BEGIN IMMEDIATE`` (the write lock is taken up front, and other
processes wait for it through ``busy_timeout`` instead of failing half-way), so in-process
writers simply queue. Reads run on a small thread pool of connections in deferred
transactions, which WAL lets proceed beside the writer. Each operation is one thread hop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

from aegis_memory.index import SearchFilter
from aegis_memory.store.records import PoolStatus, pool_status
from aegis_memory.store.sql_store import SqlStore
from aegis_memory.store.sqlite.fulltext import (
    POSTINGS_BUDGET,
    DocCounts,
    ProjectSlots,
    begin_bulk_insert,
    end_bulk_insert,
    ensure_project_index,
    ranked_matches,
)

R = TypeVar("R")

#: With WAL, ``NORMAL`` syncs at checkpoints only: safe against a crash of the process (every
#: commit is in the WAL file the OS holds), not against a power cut; ``FULL`` syncs the WAL at
#: every commit (``Settings.sqlite_synchronous`` picks).
SYNCHRONOUS = ("NORMAL", "FULL")
_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=30000",
    "PRAGMA temp_store=MEMORY",
    "PRAGMA cache_size=-65536",
)
READ_THREADS = 4


def _engine(path: str, *, begin: str, pool_size: int, synchronous: str) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        poolclass=QueuePool,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False},
        # Errors must not carry statement values (memory content, query text) into logs.
        hide_parameters=True,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver's own is always deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (*_PRAGMAS, f"PRAGMA synchronous={synchronous}"):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)

    return engine


class SQLiteStore(SqlStore):
    dialect = "sqlite"
    #: Most full-text index entries one search reads (see ``fulltext.POSTINGS_BUDGET``).
    postings_budget: int = POSTINGS_BUDGET
    _dialect_insert = staticmethod(sqlite_insert)

    def __init__(self, url: str, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path == ":memory:":
            raise ValueError("The SQLite store needs a file path (sqlite:///path/to/aegis.db).")
        path = str(Path(path).expanduser())
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._writer = _engine(path, begin="BEGIN IMMEDIATE", pool_size=1,
                               synchronous=synchronous)
        self._reader = _engine(path, begin="BEGIN", pool_size=READ_THREADS,
                               synchronous=synchronous)
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="aegis-sqlite-write")
        self._read_threads = ThreadPoolExecutor(
            READ_THREADS, thread_name_prefix="aegis-sqlite-read"
        )
        self._closed = threading.Event()
        self._seq_conn: sqlite3.Connection | None = None
        self._seq_lock = threading.Lock()
        self._point_engine = _engine(path, begin="BEGIN", pool_size=1,
                                     synchronous=synchronous)
        self._point_lock = threading.Lock()
        self._doc_counts = DocCounts()
        self._fulltext_slots = ProjectSlots()

    async def _run(self, write: bool, call: Callable[[Connection], R]) -> R:
        engine = self._writer if write else self._reader
        pool = self._write_thread if write else self._read_threads

        def _transaction() -> R:
            with engine.begin() as conn:
                return call(conn)

        return await asyncio.get_running_loop().run_in_executor(pool, _transaction)

    async def _run_point(self, call: Callable[[Connection], R]) -> R:
        """Key lookups of a few rows run right here on the event loop: on SQLite they take a
        fraction of a millisecond, less than handing them to a thread and back (and a GIL
        handoff under load costs several)."""
        with self._point_lock, self._point_engine.begin() as conn:
            return call(conn)

    def pool_status(self) -> dict[str, PoolStatus]:
        return {"sqlite_writer": pool_status(self._writer.pool),
                "sqlite_reader": pool_status(self._reader.pool),
                "sqlite_point": pool_status(self._point_engine.pool)}

    async def current_seq(self) -> int:
        """The write sequence, read inline on the event loop: it runs before every query, and a
        one-row primary-key read on an autocommit connection takes microseconds, less than the
        thread hop it would otherwise cost."""
        with self._seq_lock:
            if self._seq_conn is None:
                self._seq_conn = sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None
                )
                self._seq_conn.execute("PRAGMA busy_timeout=30000")
            row = self._seq_conn.execute(
                "SELECT value FROM counters WHERE name = 'memory_seq'"
            ).fetchone()
        return int(row[0])

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._seq_lock:
            if self._seq_conn is not None:
                self._seq_conn.close()
                self._seq_conn = None
        self._write_thread.shutdown(wait=True)
        self._read_threads.shutdown(wait=True)
        self._writer.dispose()
        self._reader.dispose()
        self._point_engine.dispose()

    def _ranked_matches(
        self, conn: Connection, flt: SearchFilter, terms: Sequence[str], limit: int
    ) -> dict[int, float]:
        return ranked_matches(
            conn, flt, terms, limit, self.postings_budget, self._doc_counts,
            self._fulltext_slots)

    def _before_memory_inserts(
        self, conn: Connection, project_ids: Iterable[str], *, bulk: bool = False
    ) -> None:
        """Each project's full-text table must exist before its first memory is inserted:
        its triggers index the rows (a bulk insert indexes them at its end instead)."""
        driver = conn.connection.driver_connection
        for project_id in sorted(set(project_ids)):
            ensure_project_index(driver, project_id)
        if bulk:
            begin_bulk_insert(driver)

    def _after_bulk_memory_inserts(
        self, conn: Connection, project_id: str, rows: Sequence[tuple[int, str]]
    ) -> None:
        end_bulk_insert(conn.connection.driver_connection, project_id, rows)

