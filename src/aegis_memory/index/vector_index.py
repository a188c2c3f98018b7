"""Filtered vector index: a small query planner over exact search and HNSW.

The database is the source of truth; this index is a derived, persisted, rebuildable
cache that answers "the k memories most similar to this query among those the filter
allows". Filters are applied *inside* the search: when at least ``k`` rows match, exactly
``k`` are returned, however selective the filter.

Per query the planner evaluates the filter on columnar attributes (see
:mod:`aegis_memory.index.attributes`) to get the candidate count ``c`` and then picks:

* ``empty``          - nothing matches.
* ``exact``          - ``c`` is small: score the candidates' vectors directly (recall 1.0).
  Cost grows with ``c``: 0.4-0.9 µs a candidate on the 2-core development box, mostly
  random memory access to gather the candidate rows.
* ``hnsw``           - the filter keeps every live row: plain HNSW search.
* ``hnsw-filtered``  - HNSW with hnswlib's filter callback. Its cost grows as the filter
  gets more selective (the walk visits ~ef/selectivity nodes), and its recall drops
  for very selective filters, so it only runs when ``c`` is large.

The exact/HNSW crossover depends on the store size ``N``: exact costs ``a·c``, filtered
HNSW roughly ``b·N/c``; they are equal at ``c = sqrt(b/a · N)``. The default threshold is
``max(exact_min_candidates, sqrt(exact_crossover · N))`` with ``exact_crossover = 500``
(7.1k candidates at N = 100k), from ``benchmarks/vector_index_bench.py`` at N = 100k:

* an interleaved sweep with filters uncorrelated with the vectors (``--sweep``) put
  the crossover at c ≈ 5k (both ~4 ms);
* filters correlated with the query's neighbourhood - the usual case, e.g. namespace +
  visibility, where the nearest rows are mostly filtered out - make the graph walk
  longer: a 6.3k-row filter took 5.4-7.7 ms p50 (p95 up to 14 ms, recall 0.976) with
  HNSW versus 4.1-4.3 ms (p95 ~5 ms, recall 1) exactly.

So the threshold sits above the uncorrelated crossover, trading ~1 ms on some
uncorrelated filters for exact results and a tighter p95 on correlated ones. Filters
keeping less than ``hnsw_min_selectivity`` (2 %) of the rows always run exactly, as
filtered-HNSW recall@10 was 0.90-0.95 at 1-3 % in the same sweep (this only matters for
stores above ~1.25M rows, where 2 % exceeds the size threshold).

Whatever plan runs, HNSW results are re-scored exactly from the stored vectors and all
results are ordered by (score desc, label asc), so ties and scores do not depend on the
plan. If HNSW cannot fill ``min(k, c)`` results it falls back to exact search.

Graph building (``graph="background"``): inserting into the HNSW graph is the costliest part
of a write (about 0.2-0.4 ms a row on two cores, more as the graph grows), so a bulk import
that waited for it could not go faster than the graph. In background mode an upsert only
stores the row's vector and attributes and queues the row; a low-priority builder thread
adds queued rows to the graph in small chunks. Until then the row is *pending*: every
search scores the pending rows its filter allows exactly and merges them with the graph's
answer, so a write is searchable as soon as ``upsert`` returns and results never miss it.
``graph="sync"`` (the constructor's default, used by the unit tests) inserts during
``upsert`` as before.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import hnswlib
import numpy as np
import numpy.typing as npt

from aegis_memory.index._rwlock import RWLock
from aegis_memory.index.attributes import AttributeStore, IntArray, Selection
from aegis_memory.index.filters import IndexedRow, SearchFilter
from aegis_memory.index.persistence import StagedSnapshot, read_snapshot

log = logging.getLogger(__name__)

PlanMode = Literal["auto", "exact", "hnsw"]
_PLAN_MODES: tuple[str, ...] = ("auto", "exact", "hnsw")
GraphMode = Literal["sync", "background"]

# Rows written per exclusive-lock hold during upsert: bounds how long a bulk load blocks
# concurrent searches (HNSW inserts run at roughly 5-10k rows/s on two cores).
_WRITE_CHUNK = 1024
# Rows gathered and scored per step in exact search: the gathered block stays in cache
# instead of materialising a copy of every candidate vector at once.
_SCORE_CHUNK = 1024
_MIN_HNSW_CAPACITY = 1024
# Rows the background builder adds to the graph per exclusive-lock hold: small, so a search
# waits at most a few milliseconds for it.
_GRAPH_CHUNK = 64
# Nice value of the builder thread (and of hnswlib's threads, which inherit it on Linux):
# request handling comes first, the graph takes the CPU that is left.
_BUILDER_NICE = 10
_BUILDER_PAUSE = 0.002


class VectorIndex:
    """In-memory filtered vector index over L2-normalised float32 vectors (cosine = IP).

    Thread safety: any number of concurrent searches/counts; writes (upsert,
    update_attrs, remove) take an exclusive lock, bulk upserts in chunks so searches
    interleave. ``synced_seq`` is an opaque integer the owner sets (e.g. the last
    database change folded in) and is persisted with the index.

    Tuning knobs (keyword-only, all have measured defaults):

    * ``ef_search`` - HNSW candidate-list size for unfiltered top-k (at least 2k; lowered
      for selective filters, see ``_ef_for``; :meth:`explain` reports the value used).
    * ``plan`` - ``"auto"`` (planner), or force ``"exact"`` / ``"hnsw"`` (tests and
      benchmarks). A forced HNSW plan still falls back to exact if HNSW comes up short,
      because returning fewer results than exist is never acceptable.
    * ``exact_min_candidates`` / ``exact_crossover`` - the exact-search threshold
      ``max(exact_min_candidates, sqrt(exact_crossover * live_rows))``.
    * ``hnsw_min_selectivity`` - filters keeping a smaller fraction of the live rows are
      searched exactly whatever their size (filtered-HNSW recall drops below ~0.95 there).
    * ``graph`` - ``"sync"`` adds rows to the HNSW graph inside ``upsert``;
      ``"background"`` queues them for a builder thread (see the module docstring).
    """

    def __init__(
        self,
        dim: int,
        model_name: str,
        *,
        m: int = 16,
        ef_construction: int = 128,
        ef_search: int = 96,
        plan: PlanMode = "auto",
        exact_min_candidates: int = 2_000,
        exact_crossover: float = 500.0,
        hnsw_min_selectivity: float = 0.02,
        initial_capacity: int = 1024,
        num_threads: int = -1,
        graph: GraphMode = "sync",
    ) -> None:
        if dim <= 0:
            raise ValueError("dim must be positive")
        if plan not in _PLAN_MODES:
            raise ValueError(f"plan must be one of {_PLAN_MODES}")
        if graph not in ("sync", "background"):
            raise ValueError("graph must be 'sync' or 'background'")
        self.dim = int(dim)
        self.model_name = str(model_name)
        self.m = int(m)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.plan_mode: PlanMode = plan
        self.exact_min_candidates = int(exact_min_candidates)
        self.exact_crossover = float(exact_crossover)
        self.hnsw_min_selectivity = float(hnsw_min_selectivity)
        self.num_threads = int(num_threads)
        self.synced_seq: int = 0

        self._lock = RWLock()
        self._save_lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._attrs = AttributeStore(initial_capacity)
        self._vectors = np.zeros((self._attrs.capacity, self.dim), dtype=np.float32)
        self._hnsw = hnswlib.Index(space="ip", dim=self.dim)
        self._hnsw.init_index(
            max_elements=max(_MIN_HNSW_CAPACITY, int(initial_capacity)),
            M=self.m,
            ef_construction=self.ef_construction,
        )
        # ef_ is index-wide state in hnswlib, so it is left at its minimum and each query
        # asks for ``max(k, ef)`` neighbours instead: hnswlib searches with
        # max(ef_, k), which gives a per-query ef without racing other threads.
        self._hnsw.set_ef(1)
        # Per slot: is the row's current vector in the graph? Rows that are live and not in
        # the graph are pending (queued for the builder, searched exactly meanwhile).
        self._in_graph = np.zeros(self._attrs.capacity, dtype=np.bool_)
        self._n_pending = 0
        self.graph_mode: GraphMode = graph
        self._queue: deque[int] = deque()
        self._builder: threading.Thread | None = None
        self._builder_wake = threading.Condition(threading.Lock())
        self._closed = False

    # ------------------------------------------------------------------ writes

    def upsert(self, rows: Sequence[IndexedRow], vectors: np.ndarray) -> None:
        """Insert rows or replace their vector and attributes (by label).

        Vectors are re-normalised defensively so scores are true cosines; zero or
        non-finite vectors are rejected. If a label appears twice, the last one wins.
        Large batches are applied in chunks, each atomically.
        """
        rows = list(rows)
        vecs = self._prepare_vectors(vectors, len(rows))
        if not rows:
            return
        last: dict[int, int] = {}
        for i, row in enumerate(rows):
            if not isinstance(row, IndexedRow):
                raise TypeError(f"expected IndexedRow, got {type(row).__name__}")
            last[row.label] = i
        if len(last) != len(rows):
            keep = sorted(last.values())
            rows = [rows[i] for i in keep]
            vecs = vecs[keep]
        for start in range(0, len(rows), _WRITE_CHUNK):
            stop = start + _WRITE_CHUNK
            with self._lock.write():
                self._upsert_locked(rows[start:stop], vecs[start:stop])

    def _upsert_locked(self, rows: list[IndexedRow], vecs: npt.NDArray[np.float32]) -> None:
        labels = [row.label for row in rows]
        attrs = self._attrs
        slots, new = attrs.slots_for(labels)
        try:
            self._ensure_vector_capacity(attrs.capacity)
            # Re-embedding with an identical vector (an attribute-only re-upsert) would
            # still make hnswlib repair the node's neighbourhood; skip those.
            live = attrs.col("live")
            changed = np.ones(len(rows), dtype=np.bool_)
            old = np.array(
                [not n and bool(live[s]) for s, n in zip(slots.tolist(), new, strict=True)]
            )
            if old.any():
                same = np.all(self._vectors[slots[old]] == vecs[old], axis=1)
                changed[np.flatnonzero(old)[same]] = False
            if changed.any() and self.graph_mode == "sync":
                self._ensure_hnsw_capacity(attrs.n_slots)
                # Reused (free) slots are marked deleted in hnswlib; adding the same label
                # again un-deletes the node and updates it in place, so deleted nodes
                # are recycled without hnswlib's replace_deleted machinery.
                self._hnsw.add_items(vecs[changed], slots[changed], num_threads=self.num_threads)
                self._in_graph[slots[changed]] = True
            self._vectors[slots] = vecs
        except BaseException:
            for slot, is_new in zip(slots.tolist(), new, strict=True):
                if is_new:
                    self._try_mark_deleted(slot)
            attrs.forget_new(labels, slots, new)
            raise
        attrs.set_rows(slots, rows)
        if self.graph_mode == "background" and changed.any():
            queued = slots[changed]
            # A live row that was already pending stays counted once; its newest vector is
            # what the builder reads.
            already_pending = old[changed] & ~self._in_graph[queued]
            self._n_pending += int(len(queued) - already_pending.sum())
            self._in_graph[queued] = False
            self._queue.extend(queued.tolist())
            self._wake_builder()

    def update_attrs(self, rows: Sequence[IndexedRow]) -> None:
        """Replace the attributes of rows already in the index (vector unchanged).

        Labels not in the index are ignored: the database is the source of truth and
        a row that was never embedded has nothing to update here.
        """
        by_label = {row.label: row for row in rows}
        with self._lock.write():
            labels, slots = self._attrs.existing_slots(by_label)
            if slots:
                self._attrs.set_rows(
                    np.asarray(slots, dtype=np.int64), [by_label[x] for x in labels]
                )

    def remove(self, labels: Sequence[int]) -> None:
        """Remove rows by label; unknown labels are ignored (removal is idempotent)."""
        with self._lock.write():
            _, slots = self._attrs.existing_slots(dict.fromkeys(int(x) for x in labels))
            for slot in slots:
                # Suppressed errors would mean graph and attributes disagreed already;
                # the attribute store decides liveness and results are checked against it.
                self._try_mark_deleted(slot)
                if not self._in_graph[slot]:
                    self._n_pending -= 1
                self._in_graph[slot] = False
            self._attrs.release(slots)

    def _try_mark_deleted(self, slot: int) -> None:
        with contextlib.suppress(RuntimeError):  # never added, or already deleted
            self._hnsw.mark_deleted(slot)

    def _ensure_vector_capacity(self, capacity: int) -> None:
        if len(self._vectors) < capacity:
            grown = np.zeros((capacity, self.dim), dtype=np.float32)
            grown[: len(self._vectors)] = self._vectors
            self._vectors = grown
        if len(self._in_graph) < capacity:
            in_graph = np.zeros(capacity, dtype=np.bool_)
            in_graph[: len(self._in_graph)] = self._in_graph
            self._in_graph = in_graph

    # ------------------------------------------------------------------ graph builder

    @property
    def pending(self) -> int:
        """Live rows not yet in the HNSW graph (searched exactly until they are)."""
        return self._n_pending

    def wait_for_graph(self, timeout: float | None = None) -> bool:
        """Block until every live row is in the graph; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._n_pending > 0:
            if deadline is not None and time.monotonic() > deadline:
                return False
            self._wake_builder()
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop the builder thread (pending rows stay pending, and are saved as such)."""
        self._closed = True
        with self._builder_wake:
            self._builder_wake.notify_all()
        if self._builder is not None:
            self._builder.join()
            self._builder = None

    def _wake_builder(self) -> None:
        if self._closed or self._n_pending <= 0:
            return
        if self._builder is None or not self._builder.is_alive():
            self._builder = threading.Thread(
                target=self._build_loop, name="aegis-graph-builder", daemon=True
            )
            self._builder.start()
        with self._builder_wake:
            self._builder_wake.notify()

    def _build_loop(self) -> None:
        with contextlib.suppress(AttributeError, OSError, PermissionError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _BUILDER_NICE)
        while not self._closed:
            if not self._queue:
                with self._builder_wake:
                    if not self._queue and not self._closed:
                        self._builder_wake.wait(timeout=1.0)
                continue
            try:
                self._build_chunk()
                # The lock is not fair: a thread that re-acquires at once would starve the
                # searches and writes waiting for it. A short pause lets them in.
                time.sleep(_BUILDER_PAUSE)
            except Exception:  # never let the thread die silently with rows pending
                log.exception("vector index: graph builder failed; retrying in 1 s")
                time.sleep(1.0)

    def _build_chunk(self) -> None:
        taken: list[int] = []
        while self._queue and len(taken) < _GRAPH_CHUNK:
            taken.append(self._queue.popleft())
        if not taken:
            return
        with self._lock.write():
            slots = np.unique(np.asarray(taken, dtype=np.int64))
            slots = slots[slots < self._attrs.n_slots]
            slots = slots[self._attrs.col("live")[slots] & ~self._in_graph[slots]]
            if not len(slots):
                return
            self._ensure_hnsw_capacity(self._attrs.n_slots)
            self._hnsw.add_items(self._vectors[slots], slots, num_threads=self.num_threads)
            self._in_graph[slots] = True
            self._n_pending -= len(slots)

    def _ensure_hnsw_capacity(self, needed: int) -> None:
        cap = self._hnsw.get_max_elements()
        if needed > cap:
            while cap < needed:
                cap *= 2
            self._hnsw.resize_index(cap)

    def _prepare_vectors(self, vectors: np.ndarray, n: int) -> npt.NDArray[np.float32]:
        arr = np.asarray(vectors, dtype=np.float32)
        if arr.ndim == 1 and n == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != self.dim:
            raise ValueError(f"vectors must have shape ({n}, {self.dim}), got {arr.shape}")
        if n == 0:
            return arr.reshape(0, self.dim)
        norms = np.linalg.norm(arr, axis=1)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ValueError("vectors must be finite and non-zero")
        return np.ascontiguousarray(arr / norms[:, None], dtype=np.float32)

    def _prepare_query(self, query: np.ndarray) -> npt.NDArray[np.float32]:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if q.shape[0] != self.dim:
            raise ValueError(f"query must have {self.dim} dimensions, got {q.shape[0]}")
        norm = float(np.linalg.norm(q))
        if not math.isfinite(norm) or norm == 0:
            raise ValueError("query must be finite and non-zero")
        return np.ascontiguousarray(q / norm, dtype=np.float32)

    # ------------------------------------------------------------------ reads

    def __len__(self) -> int:
        return self._attrs.n_live

    def count(self, flt: SearchFilter) -> int:
        """Number of live rows the filter allows (same mask as :meth:`search`)."""
        with self._lock.read():
            return self._attrs.select(flt).count

    def search(self, query: np.ndarray, k: int, flt: SearchFilter) -> list[tuple[int, float]]:
        """Top-``k`` (label, cosine score) among rows the filter allows, best first.

        Returns exactly ``min(k, count(flt))`` results; ties are broken by label.
        """
        q = self._prepare_query(query)
        if k <= 0:
            return []
        with self._lock.read():
            sel = self._attrs.select(flt)
            plan = self._plan(sel.count, k)
            self._bump(plan["plan"])
            if plan["plan"] == "empty":
                return []
            if plan["plan"] != "exact":
                result = self._search_hnsw(q, k, sel, plan)
                if result is not None:
                    return result
                self._bump("fallback-exact")
            return self._search_exact(q, k, sel.slots)

    def _pending_in(self, sel: Selection) -> IntArray:
        """The selection's pending slots (live, allowed, not in the graph yet)."""
        if self._n_pending <= 0:
            return np.empty(0, dtype=np.int64)
        in_graph = self._in_graph[: self._attrs.n_slots]
        if sel.mask is not None:
            return np.flatnonzero(sel.mask & ~in_graph)
        slots = sel.slots
        return slots[~in_graph[slots]]

    def explain(self, flt: SearchFilter, k: int) -> dict[str, Any]:
        """Which plan a search with this filter and ``k`` would run, and why."""
        with self._lock.read():
            sel = self._attrs.select(flt)
            plan = self._plan(sel.count, k)
            plan["filter_eval"] = sel.scanned
            return plan

    def stats(self) -> dict[str, int]:
        """How often each plan ran (and how often HNSW fell back to exact) since start."""
        with self._stats_lock:
            return dict(self._stats)

    def exact_threshold(self, live: int | None = None) -> int:
        """Largest candidate count searched exactly by the ``auto`` plan."""
        n = self._attrs.n_live if live is None else live
        return max(self.exact_min_candidates, int(math.sqrt(self.exact_crossover * n)))

    def _bump(self, key: str) -> None:
        with self._stats_lock:
            self._stats[key] += 1

    def _plan(self, c: int, k: int) -> dict[str, Any]:
        live = self._attrs.n_live
        threshold = self.exact_threshold(live)
        info: dict[str, Any] = {
            "candidates": c,
            "live": live,
            "selectivity": (c / live) if live else 0.0,
            "k": k,
            "exact_threshold": threshold,
            "mode": self.plan_mode,
        }
        if c == 0 or k <= 0:
            info.update(plan="empty", reason="no row matches the filter")
            return info
        if self.plan_mode == "exact":
            info.update(plan="exact", reason="plan forced to exact")
            return info
        forced = self.plan_mode == "hnsw"
        if not forced and c <= max(threshold, k):
            info.update(
                plan="exact",
                reason=f"{c} candidates <= threshold {max(threshold, k)}: scoring them "
                "directly is cheaper than a filtered graph walk, and exact",
            )
            return info
        if not forced and c < self.hnsw_min_selectivity * live:
            info.update(
                plan="exact",
                reason=f"selectivity {c / live:.2%} < {self.hnsw_min_selectivity:.0%}: a "
                "filtered graph walk this selective loses recall, so exact despite the cost",
            )
            return info
        ef = self._ef_for(k, c / live)
        if c == live:
            info.update(plan="hnsw", ef=ef, reason="filter keeps every live row")
        else:
            info.update(
                plan="hnsw-filtered",
                ef=ef,
                reason=f"{c} candidates ({c / live:.1%}) > threshold {threshold}: graph walk "
                "with the filter inside it",
            )
        if forced:
            info["reason"] = "plan forced to hnsw" + (
                "; filter keeps every live row" if c == live else "; filter callback"
            )
        return info

    def _ef_for(self, k: int, selectivity: float) -> int:
        """Candidate-list size: ``ef_search``, lowered for selective filters, >= 2k.

        hnswlib counts only allowed nodes towards ef, so a filtered walk already explores
        ~ef/selectivity nodes: its cost grows as the filter narrows while the extra
        exploration keeps recall up. Measured on the benchmark corpus (100k rows, k=10):
        recall at ef 32-48 was >= 0.98 for filters keeping 5-10 %, while filters keeping
        ~30 % needed ef ~96. So ef shrinks with sqrt(selectivity) below 30 %, which makes
        the filtered walk ~2x cheaper near the exact/HNSW crossover; never below 32.
        """
        ef = self.ef_search
        if selectivity < 0.3:
            ef = max(32, round(ef * math.sqrt(selectivity / 0.3)))
        return max(ef, 2 * k)

    def _search_hnsw(
        self, q: npt.NDArray[np.float32], k: int, sel: Selection, plan: dict[str, Any]
    ) -> list[tuple[int, float]] | None:
        """HNSW search; ``None`` if it could not produce ``min(k, c)`` valid results.

        Pending rows (not in the graph yet) the filter allows are scored exactly and
        ranked together with the graph's candidates.
        """
        pending = self._pending_in(sel)
        c = sel.count - len(pending)
        want = min(k, c)
        if c <= 0:
            return self._rank(q, pending, k)
        n_query = min(max(plan["ef"], want), c)
        try:
            if plan["plan"] == "hnsw" and not len(pending):
                labels, _ = self._hnsw.knn_query(q, k=n_query, num_threads=1)
            else:
                if sel.mask is not None:
                    mask = sel.mask.copy() if len(pending) else sel.mask
                else:
                    mask = np.zeros(self._attrs.n_slots, dtype=np.bool_)
                    mask[sel.slots] = True
                if len(pending):
                    # A pending row may still sit in the graph under its previous vector;
                    # keep the walk to rows the graph holds as they are now.
                    mask[pending] = False
                allowed = mask.tobytes()
                # bytes.__getitem__ is the cheapest callable: no Python frame per call.
                labels, _ = self._hnsw.knn_query(
                    q, k=n_query, num_threads=1, filter=allowed.__getitem__
                )
        except RuntimeError:
            # hnswlib raises when it cannot fill k (e.g. allowed nodes unreachable).
            return None
        slots = labels[0].astype(np.int64)
        # Belt and braces: never let a node the attribute store considers dead through
        # (e.g. a snapshot whose graph and arrays disagree).
        slots = slots[slots < self._attrs.n_slots]
        slots = slots[self._attrs.col("live")[slots]]
        if len(slots) < want:
            return None
        if len(pending):
            # The allowed pending rows compete with the graph's candidates, scored exactly.
            slots = np.union1d(slots, pending)
        return self._rank(q, slots, k)

    def _search_exact(
        self, q: npt.NDArray[np.float32], k: int, slots: IntArray
    ) -> list[tuple[int, float]]:
        scores = self._scores(q, slots)
        if len(slots) > k:
            # Keep everything tied with the k-th score so the tie-break below is exact.
            kth = np.partition(scores, len(scores) - k)[len(scores) - k]
            keep = np.flatnonzero(scores >= kth)
            slots, scores = slots[keep], scores[keep]
        return self._order(slots, scores, k)

    def _rank(self, q: npt.NDArray[np.float32], slots: IntArray, k: int) -> list[tuple[int, float]]:
        return self._order(slots, self._scores(q, slots), k)

    def _order(
        self, slots: IntArray, scores: npt.NDArray[np.float32], k: int
    ) -> list[tuple[int, float]]:
        labels = self._attrs.col("label")[slots]
        order = np.lexsort((labels, -scores))[:k]
        return list(zip(labels[order].tolist(), scores[order].astype(float).tolist(), strict=True))

    def _scores(self, q: npt.NDArray[np.float32], slots: IntArray) -> npt.NDArray[np.float32]:
        """Exact cosine scores of ``slots``, in chunks (see ``_SCORE_CHUNK``).

        ``einsum`` rather than BLAS ``dot``: OpenBLAS's sgemv rounds a row differently
        depending on its position in the matrix (blocked kernels with remainder paths),
        so the same row could score differently in an exact scan and in an HNSW re-rank,
        or before and after a save/load. einsum's per-row loop gives bit-identical
        scores wherever the row sits, for ~10-20 % more time.
        """
        out = np.empty(len(slots), dtype=np.float32)
        vectors = self._vectors
        for start in range(0, len(slots), _SCORE_CHUNK):
            stop = start + _SCORE_CHUNK
            np.einsum("ij,j->i", vectors[slots[start:stop]], q, out=out[start:stop])
        return out

    # ------------------------------------------------------------------ persistence

    def save(self, directory: Path) -> None:
        """Write a snapshot atomically (new files, then one rename of meta.json).

        Searches continue during a save. Writes wait only while the data is copied to
        temporary files; fsync, checksums and the commit run after the lock is released.
        Concurrent saves are serialised.
        """
        with self._save_lock:
            staged = StagedSnapshot(Path(directory))
            with self._lock.read():
                attrs = self._attrs
                meta = {
                    "dim": self.dim,
                    "model_name": self.model_name,
                    "space": "ip",
                    "m": self.m,
                    "ef_construction": self.ef_construction,
                    "synced_seq": int(self.synced_seq),
                    "n_slots": attrs.n_slots,
                    "n_live": attrs.n_live,
                    "hnsw_elements": int(self._hnsw.element_count),
                }
                hnsw = self._hnsw
                arrays = attrs.to_arrays()
                arrays["in_graph"] = self._in_graph[: attrs.n_slots].copy()
                staged.stage(
                    arrays,
                    self._vectors[: attrs.n_slots],
                    attrs.tables_to_lists(),
                    lambda path: hnsw.save_index(str(path)),
                )
            staged.commit(meta)

    @classmethod
    def load(
        cls, directory: Path, *, dim: int, model_name: str, **options: Any
    ) -> VectorIndex | None:
        """Load a snapshot, or ``None`` if it is missing, corrupt or for another model/dim.

        ``options`` are the tuning knobs of the constructor (``ef_search``, ``plan``...);
        graph parameters (``m``, ``ef_construction``) come from the snapshot.
        """
        for graph_param in ("m", "ef_construction", "initial_capacity"):
            options.pop(graph_param, None)
        snap = read_snapshot(Path(directory), dim=dim, model_name=model_name)
        if snap is None:
            return None
        try:
            return cls._from_snapshot(
                snap.meta, snap.arrays, snap.vectors, snap.tables, snap.hnsw_path, options
            )
        except Exception as exc:  # a snapshot that verifies but does not add up
            log.warning("vector index snapshot in %s is inconsistent: %r", directory, exc)
            return None

    @classmethod
    def _from_snapshot(
        cls,
        meta: dict[str, Any],
        arrays: dict[str, np.ndarray],
        saved_vectors: np.ndarray,
        tables: dict[str, list[str]],
        hnsw_path: Path,
        options: dict[str, Any],
    ) -> VectorIndex:
        if meta.get("space") != "ip":
            raise ValueError("snapshot space is not inner product")
        arrays = dict(arrays)
        saved_in_graph = arrays.pop("in_graph", None)
        attrs = AttributeStore.from_arrays(arrays, tables)
        if attrs.n_slots != meta["n_slots"] or attrs.n_live != meta["n_live"]:
            raise ValueError("row counts do not match meta.json")
        index = cls(
            int(meta["dim"]),
            str(meta["model_name"]),
            m=int(meta["m"]),
            ef_construction=int(meta["ef_construction"]),
            initial_capacity=16,
            **options,
        )
        hnsw = hnswlib.Index(space="ip", dim=index.dim)
        hnsw.load_index(str(hnsw_path), max_elements=max(_MIN_HNSW_CAPACITY, attrs.capacity))
        if hnsw.element_count > attrs.n_slots or hnsw.dim != index.dim:
            raise ValueError("HNSW file does not match the attribute arrays")
        live = attrs.col("live")
        if saved_in_graph is None:  # snapshots from before background graph building
            if hnsw.element_count != attrs.n_slots:
                raise ValueError("HNSW file does not match the attribute arrays")
            saved_in_graph = live.copy()
        if saved_in_graph.shape != (attrs.n_slots,) or saved_in_graph.dtype != np.bool_:
            raise ValueError("in_graph array does not match the attribute arrays")
        in_graph = np.zeros(attrs.capacity, dtype=np.bool_)
        in_graph[: attrs.n_slots] = saved_in_graph & live
        hnsw.set_ef(1)
        if saved_vectors.dtype != np.float32 or saved_vectors.shape != (attrs.n_slots, index.dim):
            raise ValueError(f"vectors have shape {saved_vectors.shape} / {saved_vectors.dtype}")
        if attrs.capacity == attrs.n_slots:
            vectors = saved_vectors  # no second copy of what may be gigabytes
        else:
            vectors = np.zeros((attrs.capacity, index.dim), dtype=np.float32)
            vectors[: attrs.n_slots] = saved_vectors
        live_slots = np.flatnonzero(in_graph[: attrs.n_slots])
        if len(live_slots):
            # The graph and the vector file were written together; a cheap spot check
            # that they still agree (get_items raises if a live slot is deleted/missing).
            rng = np.random.default_rng(len(live_slots))
            sample = np.unique(rng.choice(live_slots, min(256, len(live_slots))))
            if not np.array_equal(np.asarray(hnsw.get_items(sample)), vectors[sample]):
                raise ValueError("HNSW vectors disagree with the vector file")
        index._attrs = attrs
        index._vectors = vectors
        index._hnsw = hnsw
        index._in_graph = in_graph
        pending = np.flatnonzero(live & ~in_graph[: attrs.n_slots])
        index._n_pending = len(pending)
        if len(pending):
            if index.graph_mode == "sync":
                with index._lock.write():
                    index._ensure_hnsw_capacity(attrs.n_slots)
                    index._hnsw.add_items(vectors[pending], pending, num_threads=index.num_threads)
                    index._in_graph[pending] = True
                    index._n_pending = 0
            else:
                index._queue.extend(pending.tolist())
                index._wake_builder()
        index.synced_seq = int(meta["synced_seq"])
        return index
