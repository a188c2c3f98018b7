"""Filtered vector index: a small query planner over exact search and an HNSW graph.

The database is the source of truth; this index is a derived, persisted, rebuildable
cache that answers "the k memories most similar to this query among those the filter
allows". Filters are applied *inside* the search: when at least ``k`` rows match, exactly
``k`` are returned, however selective the filter.

Per query the planner evaluates the filter on columnar attributes (see
:mod:`aegis_memory.index.attributes`) to get the candidate count ``c`` and then picks:

* ``empty``          - nothing matches.
* ``exact``          - ``c`` is small: score the candidates' vectors directly (recall 1.0).
  Cost grows with ``c``: ~0.8 µs a candidate on the 2-core development box, mostly
  random memory access to gather the candidate rows.
* ``hnsw``           - the filter keeps every live row: plain HNSW search.
* ``hnsw-filtered``  - HNSW with the filter inside the walk (a bitmap over graph nodes,
  ``faiss.IDSelectorBitmap``). faiss counts *every* visited node towards ``ef``, allowed
  or not, so a selective filter leaves fewer allowed nodes among those visited: ``ef``
  grows as the filter narrows (``_ef_for``), and the walk only runs when ``c`` is large.

The exact/HNSW crossover depends on the store size ``N``: exact costs ``a·c``, filtered
HNSW roughly ``b·N/c``; they are equal at ``c = sqrt(b/a · N)``. The default threshold is
``max(exact_min_candidates, sqrt(exact_crossover · N))`` with ``exact_crossover = 500``
(7.1k candidates at N = 100k), calibrated with ``benchmarks/vector_index_bench.py`` at
N = 100k on the earlier hnswlib graph (see docs/guides/performance.md):

* an interleaved sweep with filters uncorrelated with the vectors (``--sweep``) put
  the crossover at c ≈ 5k (both ~4 ms);
* filters correlated with the query's neighbourhood - the usual case, e.g. namespace +
  visibility, where the nearest rows are mostly filtered out - make the graph walk
  longer, so the threshold sits above the uncorrelated crossover, trading ~1 ms on some
  uncorrelated filters for exact results and a tighter p95 on correlated ones.

Filters keeping less than ``hnsw_min_selectivity`` (2 %) of the rows always run exactly
(this only matters for stores above ~1.25M rows, where 2 % exceeds the size threshold).

Whatever plan runs, HNSW results are re-scored exactly from the stored vectors and all
results are ordered by (score desc, label asc), so ties and scores do not depend on the
plan. If HNSW cannot fill ``min(k, c)`` results it falls back to exact search.

Memory: every vector is held once at full resolution for exact scoring, as **float16**
by slot (``_vectors``, 768 bytes a row at dim 384), and once more inside the graph,
compressed to 8 bits per dimension (faiss ``IndexHNSWSQ`` with ``QT_8bit``: 384 bytes a
row plus ~130 bytes of links at M=16). Scores are cosines of the stored half-precision
vectors: within ~1e-3 of the float32 cosine (the PostgreSQL backend stores float32, so
the two backends' scores agree to that precision, and two rows closer than that may be
ordered differently). The 8-bit codes only decide which candidates the graph walk finds;
every candidate is re-scored from the float16 copy. The quantiser's per-dimension ranges
are trained when the graph is first built: on the live vectors' min/max widened by
``_SQ_MARGIN`` (values outside are clipped, which only blurs candidate selection), or on
the whole [-1, 1] range of a unit vector while fewer than ``_SQ_MIN_TRAIN`` rows exist;
such a coarse graph is rebuilt once the store reaches ``4 * _SQ_MIN_TRAIN`` rows.

Graph ids ("fids") are not slots. faiss's HNSW cannot delete or update a node and numbers
nodes in insertion order, so ``_slot_of_fid`` / ``_fid_of_slot`` map between the two: a
row whose vector changes, or a slot released (and perhaps reused), leaves its old node
dead (a tombstone, excluded from every walk by the filter bitmap); the row is queued and
gets a new node. While no node is dead and node ``i`` is slot ``i`` (a bulk import), the
slot mask *is* the node bitmap and no per-query gather is needed. Dead nodes still cost
memory and walk time, so when they exceed ``compact_dead_fraction`` (20 %) of the graph
it is rebuilt from the live rows (the builder thread does it without blocking searches
and swaps the new graph in; in ``graph="sync"`` mode it happens inside the write).

Graph building (``graph="background"``): inserting into the HNSW graph is the costliest part
of a write, so a bulk import that waited for it could not go faster than the graph. In
background mode an upsert only stores the row's vector and attributes and queues the row; a
low-priority builder thread adds queued rows to the graph in small chunks. Until then the
row is *pending*: every search scores the pending rows its filter allows exactly and merges
them with the graph's answer, so a write is searchable as soon as ``upsert`` returns and
results never miss it. ``graph="sync"`` (the constructor's default, used by the unit tests)
inserts during ``upsert``.

Threads: faiss releases the GIL while it searches and adds. A single-query search runs on
the calling thread only (faiss parallelises over queries); adds use OpenMP threads
(``num_threads``; OpenMP's thread count is per calling thread, so it is set on the thread
that adds), and the builder's OpenMP threads inherit its low priority.
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

import faiss
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
# concurrent searches.
_WRITE_CHUNK = 1024
# Rows gathered, widened to float32 and scored per step in exact search: the block and its
# scratch buffers stay in cache (256 rows measured ~2x faster than 1024 on the dev box).
_SCORE_CHUNK = 256
# Rows the background builder adds to the graph per exclusive-lock hold: small, so a search
# waits at most a few milliseconds for it.
_GRAPH_CHUNK = 64
# Rows added per step while a replacement graph is built outside the lock.
_REBUILD_CHUNK = 4096
# Nice value of the builder thread (and of its OpenMP threads, which inherit it on Linux):
# request handling comes first, the graph takes the CPU that is left.
_BUILDER_NICE = 10
_BUILDER_PAUSE = 0.002
# Scalar quantiser of the graph: below this many rows the per-dimension ranges are the
# whole [-1, 1] of a unit vector; from it on, the rows' min/max widened by the margin
# (a fraction of the range on each side) so later rows are rarely clipped.
_SQ_MIN_TRAIN = 1000
_SQ_MARGIN = 0.25
_SQ_TRAIN_SAMPLE = 100_000
# ef for filtered walks (see ``VectorIndex._ef_for``): full below this selectivity...
_EF_FULL = 0.3
# ... up to this many times ef_search.
_EF_MAX_FACTOR = 4.0

# float16 -> float32 by bit manipulation (exact, including subnormals): numpy's own cast
# is a scalar loop here (~6 µs a 384-d row), this is ~4 vectorised passes. The half's
# bits go to the top of an int32, an arithmetic shift by 3 puts exponent and mantissa
# where float32 has them (copying the sign into bits 28-30, cleared by the mask), and
# multiplying by 2**112 rebiases the exponent (15 -> 127).
_F16_KEEP = np.int32(-0x70000001)  # 0x8FFFFFFF
_F16_REBIAS = np.float32(2.0**112)


def _f16_to_f32(
    halves: npt.NDArray[np.uint16], bits: npt.NDArray[np.int32]
) -> npt.NDArray[np.float32]:
    """Widen float16 values (given as their uint16 bits) into ``bits``, viewed as float32."""
    np.left_shift(halves, 16, out=bits, dtype=np.int32, casting="unsafe")
    bits >>= 3
    bits &= _F16_KEEP
    out = bits.view(np.float32)
    out *= _F16_REBIAS
    return out


def _widen(vectors16: np.ndarray) -> npt.NDArray[np.float32]:
    """A float32 copy of a float16 block (see :func:`_f16_to_f32`)."""
    halves = np.ascontiguousarray(vectors16).view(np.uint16)
    return _f16_to_f32(halves, np.empty(halves.shape, dtype=np.int32))


class VectorIndex:
    """In-memory filtered vector index over L2-normalised vectors (cosine = IP).

    Vectors are stored as float16 (see the module docstring). Thread safety: any number
    of concurrent searches/counts; writes (upsert, update_attrs, remove) take an exclusive
    lock, bulk upserts in chunks so searches interleave. ``synced_seq`` is an opaque
    integer the owner sets (e.g. the last database change folded in) and is persisted
    with the index.

    Tuning knobs (keyword-only, all have measured defaults):

    * ``ef_search`` - how many graph candidates are re-scored exactly (at least k), and
      the walk's candidate-list size for unfiltered search; raised for selective filters,
      see ``_ef_for`` (:meth:`explain` reports the value used). 160: on 200k real MiniLM
      vectors recall@10 was 0.997-1.0 for filters keeping 6-97 % at 0.6-1.1 ms p50 (96:
      0.992-0.9995 at 0.4-1.1 ms); docs/guides/performance.md has the tables.
    * ``plan`` - ``"auto"`` (planner), or force ``"exact"`` / ``"hnsw"`` (tests and
      benchmarks). A forced HNSW plan still falls back to exact if HNSW comes up short,
      because returning fewer results than exist is never acceptable.
    * ``exact_min_candidates`` / ``exact_crossover`` - the exact-search threshold
      ``max(exact_min_candidates, sqrt(exact_crossover * live_rows))``.
    * ``hnsw_min_selectivity`` - filters keeping a smaller fraction of the live rows are
      searched exactly whatever their size.
    * ``graph`` - ``"sync"`` adds rows to the HNSW graph inside ``upsert``;
      ``"background"`` queues them for a builder thread (see the module docstring).
    * ``num_threads`` - OpenMP threads for graph inserts (-1: one per core). 1 by default:
      on the busy 2-core box two threads added 10k rows 1.5-2x slower (wall) for 3-4x the
      CPU, as OpenMP threads spin waiting for each other when the cores are taken, and
      the builder should leave a core to the requests anyway. Searches are
      single-threaded whatever this is.
    * ``compact_dead_fraction`` - rebuild the graph when dead nodes exceed this share.
    """

    def __init__(
        self,
        dim: int,
        model_name: str,
        *,
        m: int = 16,
        ef_construction: int = 128,
        ef_search: int = 160,
        plan: PlanMode = "auto",
        exact_min_candidates: int = 2_000,
        exact_crossover: float = 500.0,
        hnsw_min_selectivity: float = 0.02,
        initial_capacity: int = 1024,
        num_threads: int = 1,
        graph: GraphMode = "sync",
        compact_dead_fraction: float = 0.2,
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
        self.compact_dead_fraction = float(compact_dead_fraction)
        self.synced_seq: int = 0

        self._lock = RWLock()
        self._save_lock = threading.Lock()
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._attrs = AttributeStore(initial_capacity)
        self._vectors = np.zeros((self._attrs.capacity, self.dim), dtype=np.float16)
        # The graph (None until the first row is added) and its node <-> slot maps.
        self._graph: Any = None
        self._sq_trained_on = 0  # rows the quantiser's ranges were taken from
        self._fid_of_slot = np.full(self._attrs.capacity, -1, dtype=np.int64)
        self._slot_of_fid = np.full(1024, -1, dtype=np.int64)
        self._n_dead = 0
        self._identity = True  # node i is slot i for every node, none dead
        self._alive_bits: np.ndarray | None = None  # cached bitmap of the live nodes
        # Live rows without a node for their current vector are pending (queued for the
        # builder, searched exactly meanwhile).
        self._n_pending = 0
        self.graph_mode: GraphMode = graph
        self._queue: deque[int] = deque()
        self._builder: threading.Thread | None = None
        self._builder_wake = threading.Condition(threading.Lock())
        self._rebuilding = False
        self._closed = False

    # ------------------------------------------------------------------ writes

    def upsert(self, rows: Sequence[IndexedRow], vectors: np.ndarray) -> None:
        """Insert rows or replace their vector and attributes (by label).

        Vectors are re-normalised defensively so scores are true cosines (then stored as
        float16); zero or non-finite vectors are rejected. If a label appears twice, the
        last one wins. Large batches are applied in chunks, each atomically.
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
                self._maybe_rebuild_sync()
        self._wake_builder()

    def _upsert_locked(self, rows: list[IndexedRow], vecs: npt.NDArray[np.float32]) -> None:
        labels = [row.label for row in rows]
        attrs = self._attrs
        slots, new = attrs.slots_for(labels)
        vecs16 = vecs.astype(np.float16)
        try:
            self._ensure_vector_capacity(attrs.capacity)
            # Re-embedding with an identical vector (an attribute-only re-upsert) would
            # still cost a new graph node and a tombstone; skip those.
            live = attrs.col("live")
            changed = np.ones(len(rows), dtype=np.bool_)
            old = np.array(
                [not n and bool(live[s]) for s, n in zip(slots.tolist(), new, strict=True)]
            )
            if old.any():
                same = np.all(self._vectors[slots[old]] == vecs16[old], axis=1)
                changed[np.flatnonzero(old)[same]] = False
            if changed.any() and self.graph_mode == "sync":
                # The graph gets the stored (float16) vectors; old nodes become dead.
                self._graph_add(slots[changed], _widen(vecs16[changed]))
            self._vectors[slots] = vecs16
        except BaseException:
            self._kill(slots[np.asarray(new, dtype=np.bool_)])
            attrs.forget_new(labels, slots, new)
            raise
        attrs.set_rows(slots, rows)
        if self.graph_mode == "background" and changed.any():
            queued = slots[changed]
            # A live row that was already pending stays counted once; its newest vector is
            # what the builder reads.
            already_pending = old[changed] & (self._fid_of_slot[queued] < 0)
            self._kill(queued)  # the graph's node holds the previous vector
            self._n_pending += int(len(queued) - already_pending.sum())
            self._queue.extend(queued.tolist())

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
            _, slot_list = self._attrs.existing_slots(dict.fromkeys(int(x) for x in labels))
            slots = np.asarray(slot_list, dtype=np.int64)
            if len(slots):
                self._n_pending -= int((self._fid_of_slot[slots] < 0).sum())
                self._kill(slots)
            self._attrs.release(slot_list)
            self._maybe_rebuild_sync()
        self._wake_builder()

    def _kill(self, slots: IntArray) -> None:
        """The slots' graph nodes (if any) become dead: never returned, rebuilt away."""
        if not len(slots):
            return
        fids = self._fid_of_slot[slots]
        fids = fids[fids >= 0]
        if not len(fids):
            return
        self._slot_of_fid[fids] = -1
        self._fid_of_slot[slots] = -1
        self._n_dead += len(fids)
        self._identity = False
        self._alive_bits = None

    def _ensure_vector_capacity(self, capacity: int) -> None:
        if len(self._vectors) < capacity:
            grown = np.zeros((capacity, self.dim), dtype=np.float16)
            grown[: len(self._vectors)] = self._vectors
            self._vectors = grown
        if len(self._fid_of_slot) < capacity:
            fids = np.full(capacity, -1, dtype=np.int64)
            fids[: len(self._fid_of_slot)] = self._fid_of_slot
            self._fid_of_slot = fids

    def _ensure_fid_capacity(self, needed: int) -> None:
        cap = len(self._slot_of_fid)
        if needed > cap:
            while cap < needed:
                cap *= 2
            grown = np.full(cap, -1, dtype=np.int64)
            grown[: len(self._slot_of_fid)] = self._slot_of_fid
            self._slot_of_fid = grown

    # ------------------------------------------------------------------ the graph

    def _new_graph(self, sample: npt.NDArray[np.float32]) -> Any:
        """An empty faiss HNSW graph over 8-bit codes, its quantiser trained on ``sample``.

        The quantiser's ranges are set through ``train`` on two rows (per-dimension low
        and high) because faiss's min/max training on them gives exactly those ranges.
        """
        graph = faiss.IndexHNSWSQ(
            self.dim, faiss.ScalarQuantizer.QT_8bit, self.m, faiss.METRIC_INNER_PRODUCT
        )
        graph.hnsw.efConstruction = self.ef_construction
        if len(sample) < _SQ_MIN_TRAIN:
            lo = np.full(self.dim, -1.0, dtype=np.float32)
            hi = np.full(self.dim, 1.0, dtype=np.float32)
        else:
            lo, hi = sample.min(axis=0), sample.max(axis=0)
            width = np.maximum(hi - lo, 1e-3)
            lo = np.maximum(lo - _SQ_MARGIN * width, -1.0)
            hi = np.minimum(hi + _SQ_MARGIN * width, 1.0)
        graph.train(np.ascontiguousarray(np.stack([lo, hi]), dtype=np.float32))
        return graph

    def _train_sample(self, extra: npt.NDArray[np.float32] | None = None) -> np.ndarray:
        """Live vectors (a seeded sample of at most ``_SQ_TRAIN_SAMPLE``) plus ``extra``."""
        live = np.flatnonzero(self._attrs.col("live"))
        if len(live) > _SQ_TRAIN_SAMPLE:
            rng = np.random.default_rng(len(live))
            live = np.sort(rng.choice(live, _SQ_TRAIN_SAMPLE, replace=False))
        parts = [_widen(self._vectors[live])]
        if extra is not None:
            parts.append(extra)
        return np.concatenate(parts)

    def _add_to(self, graph: Any, block: npt.NDArray[np.float32]) -> None:
        threads = self.num_threads if self.num_threads > 0 else (os.cpu_count() or 1)
        faiss.omp_set_num_threads(threads)  # OpenMP's setting is the calling thread's
        graph.add(block)

    def _graph_add(self, slots: IntArray, block: npt.NDArray[np.float32]) -> None:
        """Add the slots' vectors as new nodes (under the write lock); old nodes die."""
        if self._graph is None:
            sample = self._train_sample(block)
            self._graph = self._new_graph(sample)
            self._sq_trained_on = len(sample)
        graph = self._graph
        start = int(graph.ntotal)
        self._ensure_fid_capacity(start + len(slots))
        try:
            self._add_to(graph, block)
        finally:
            end = int(graph.ntotal)
            if end != start + len(slots):  # a failed add: whatever went in is dead
                self._slot_of_fid[start:end] = -1
                self._n_dead += end - start
                self._identity = False
                self._alive_bits = None
        self._kill(slots)
        self._slot_of_fid[start:end] = slots
        self._fid_of_slot[slots] = np.arange(start, end, dtype=np.int64)
        if self._identity and not (slots[0] == start and np.array_equal(
            slots, np.arange(start, end, dtype=np.int64)
        )):
            self._identity = False
        self._alive_bits = None

    def _rebuild_reason(self) -> str | None:
        """Why the graph should be rebuilt from the live rows now, if it should."""
        graph = self._graph
        if graph is None or self._rebuilding:
            return None
        if self._n_dead > 0 and self._n_dead > self.compact_dead_fraction * graph.ntotal:
            return "dead nodes"
        if self._sq_trained_on < _SQ_MIN_TRAIN and self._attrs.n_live >= 4 * _SQ_MIN_TRAIN:
            return "quantiser trained on too few rows"
        return None

    def _maybe_rebuild_sync(self) -> None:
        """``graph="sync"``: rebuild inside the write (the caller holds the write lock)."""
        if self.graph_mode != "sync":
            return
        reason = self._rebuild_reason()
        if reason is None:
            return
        slots = np.flatnonzero(self._fid_of_slot[: self._attrs.n_slots] >= 0)
        sample = self._train_sample()
        graph = self._new_graph(sample)
        for start in range(0, len(slots), _REBUILD_CHUNK):
            chunk = slots[start : start + _REBUILD_CHUNK]
            self._add_to(graph, _widen(self._vectors[chunk]))
        self._install(graph, slots, np.ones(len(slots), dtype=np.bool_), len(sample))
        self._bump("graph-rebuild")

    def _rebuild_background(self) -> None:
        """Build a replacement graph from the rows in the current one, then swap it in.

        Runs on the builder thread. The vectors are read in chunks under the read lock and
        added outside any lock, so searches and writes go on; a row whose node died in the
        meantime (vector changed, removed) is left out at the swap, and is pending already.
        """
        with self._lock.read():
            reason = self._rebuild_reason()
            if reason is None:
                return
            self._rebuilding = True
            slots = np.flatnonzero(self._fid_of_slot[: self._attrs.n_slots] >= 0)
            fids = self._fid_of_slot[slots].copy()
            sample = self._train_sample()
        try:
            log.info("vector index: rebuilding the graph (%s), %d rows", reason, len(slots))
            started = time.monotonic()
            graph = self._new_graph(sample)
            for start in range(0, len(slots), _REBUILD_CHUNK):
                if self._closed:
                    return
                chunk = slots[start : start + _REBUILD_CHUNK]
                with self._lock.read():
                    block = _widen(self._vectors[chunk])
                self._add_to(graph, block)
            with self._lock.write():
                valid = self._fid_of_slot[slots] == fids
                self._install(graph, slots, valid, len(sample))
            self._bump("graph-rebuild")
            log.info(
                "vector index: graph rebuilt in %.1f s", time.monotonic() - started
            )
        finally:
            self._rebuilding = False

    def _install(
        self, graph: Any, slots: IntArray, valid: npt.NDArray[np.bool_], trained_on: int
    ) -> None:
        """Make ``graph`` (node i = ``slots[i]``, dead where not ``valid``) the graph."""
        n = len(slots)
        slot_of_fid = np.full(max(1024, n), -1, dtype=np.int64)
        slot_of_fid[:n] = np.where(valid, slots, -1)
        self._fid_of_slot[:] = -1
        self._fid_of_slot[slots[valid]] = np.flatnonzero(valid)
        self._slot_of_fid = slot_of_fid
        self._n_dead = int(n - valid.sum())
        self._identity = self._n_dead == 0 and np.array_equal(
            slots, np.arange(n, dtype=np.int64)
        )
        self._alive_bits = None
        self._graph = graph
        self._sq_trained_on = int(trained_on)

    # ------------------------------------------------------------------ graph builder

    @property
    def pending(self) -> int:
        """Live rows not yet in the HNSW graph (searched exactly until they are)."""
        return self._n_pending

    def wait_for_graph(self, timeout: float | None = None) -> bool:
        """Block until every live row is in the graph (and no rebuild runs); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._n_pending > 0 or self._rebuilding:
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
        if self._closed or self.graph_mode != "background":
            return
        if self._n_pending <= 0 and self._rebuild_reason() is None:
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
            try:
                if self._rebuild_reason() is not None:
                    self._rebuild_background()
                    continue
                if not self._queue:
                    with self._builder_wake:
                        if not self._queue and not self._closed:
                            self._builder_wake.wait(timeout=1.0)
                    continue
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
            slots = slots[self._attrs.col("live")[slots] & (self._fid_of_slot[slots] < 0)]
            if not len(slots):
                return
            self._graph_add(slots, _widen(self._vectors[slots]))
            self._n_pending -= len(slots)

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
        unplaced = self._fid_of_slot[: self._attrs.n_slots] < 0
        if sel.mask is not None:
            return np.flatnonzero(sel.mask & unplaced)
        slots = sel.slots
        return slots[unplaced[slots]]

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
                "; filter keeps every live row" if c == live else "; filter bitmap"
            )
        return info

    def _ef_for(self, k: int, selectivity: float) -> int:
        """The walk's candidate-list size: ``ef_search`` (>= 2k), raised for narrow filters.

        faiss counts every node the walk visits towards ef, allowed or not, so a filter
        keeping a share ``s`` of the rows finds only ~``s·ef`` allowed candidates near the
        query (hnswlib, before, counted allowed nodes only and needed the opposite
        correction). ef grows as ``sqrt(_EF_FULL / s)`` below ``_EF_FULL``, at most
        ``_EF_MAX_FACTOR``-fold; measured in docs/guides/performance.md.
        """
        ef = max(self.ef_search, 2 * k)
        if selectivity < _EF_FULL:
            factor = min(_EF_MAX_FACTOR, math.sqrt(_EF_FULL / max(selectivity, 1e-9)))
            ef = round(ef * factor)
        return ef

    def _fid_bitmap(self, sel: Selection, plan: dict[str, Any]) -> np.ndarray | None:
        """The graph nodes the walk may return, as a little-endian bitmap (None: all).

        Node ``f`` is allowed when it is alive and the filter allows slot
        ``_slot_of_fid[f]``. While node i is slot i (no dead node), the slot mask is the
        bitmap as it is.
        """
        n_fids = int(self._graph.ntotal)
        if plan["plan"] == "hnsw":  # every live row is allowed: only dead nodes are not
            if self._n_dead == 0:
                return None
            bits = self._alive_bits
            if bits is None:
                bits = np.packbits(self._slot_of_fid[:n_fids] >= 0, bitorder="little")
                self._alive_bits = bits  # same value whichever reader computes it
            return bits
        if sel.mask is not None:
            if self._identity:
                allowed = sel.mask[:n_fids]
            else:
                slot_of = self._slot_of_fid[:n_fids]
                allowed = np.take(sel.mask, slot_of, mode="clip")
                allowed &= slot_of >= 0
        else:
            allowed = np.zeros(n_fids, dtype=np.bool_)
            fids = self._fid_of_slot[sel.slots]
            allowed[fids[fids >= 0]] = True
        return np.packbits(allowed, bitorder="little")

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
        graph = self._graph
        if graph is None:
            return None
        n_query = min(max(self.ef_search, want), c)
        params = faiss.SearchParametersHNSW()
        params.efSearch = max(int(plan["ef"]), n_query)
        bitmap = self._fid_bitmap(sel, plan)
        if bitmap is not None:
            # The selector only points at the bitmap: both must outlive the search.
            selector = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))
            params.sel = selector
        try:
            _, found = graph.search(q[None, :], n_query, params=params)
        except RuntimeError:
            return None
        fids = found[0]
        fids = fids[fids >= 0]
        slots = self._slot_of_fid[fids]
        # Belt and braces: never let a node the attribute store considers dead through
        # (e.g. a snapshot whose graph and arrays disagree).
        slots = slots[(slots >= 0) & (slots < self._attrs.n_slots)]
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
        """Exact scores of ``slots`` against their stored float16 vectors, in chunks.

        Each chunk of rows (see ``_SCORE_CHUNK``) is gathered, widened to float32 exactly
        (:func:`_f16_to_f32`, into scratch buffers reused across chunks) and scored with
        ``einsum`` rather than BLAS ``dot``: OpenBLAS's sgemv rounds a row differently
        depending on its position in the matrix (blocked kernels with remainder paths),
        so the same row could score differently in an exact scan and in an HNSW re-rank,
        or before and after a save/load. einsum's per-row loop gives bit-identical
        scores wherever the row sits, for ~10-20 % more time.
        """
        out = np.empty(len(slots), dtype=np.float32)
        if not len(slots):
            return out
        halves = self._vectors.view(np.uint16)
        rows = min(_SCORE_CHUNK, len(slots))
        gathered = np.empty((rows, self.dim), dtype=np.uint16)
        bits = np.empty((rows, self.dim), dtype=np.int32)
        for start in range(0, len(slots), _SCORE_CHUNK):
            chunk = slots[start : start + _SCORE_CHUNK]
            n = len(chunk)
            np.take(halves, chunk, axis=0, out=gathered[:n], mode="clip")
            block = _f16_to_f32(gathered[:n], bits[:n])
            np.einsum("ij,j->i", block, q, out=out[start : start + n])
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
                graph = self._graph
                n_fids = 0 if graph is None else int(graph.ntotal)
                meta = {
                    "dim": self.dim,
                    "model_name": self.model_name,
                    "space": "ip",
                    "graph": "faiss-hnsw-sq8",
                    "m": self.m,
                    "ef_construction": self.ef_construction,
                    "synced_seq": int(self.synced_seq),
                    "n_slots": attrs.n_slots,
                    "n_live": attrs.n_live,
                    "graph_nodes": n_fids,
                    "sq_trained_on": int(self._sq_trained_on),
                }
                arrays = attrs.to_arrays()
                arrays["slot_of_fid"] = self._slot_of_fid[:n_fids].copy()

                def write_graph(path: Path) -> None:
                    if graph is None:
                        path.write_bytes(b"")
                    else:
                        faiss.write_index(graph, str(path))

                staged.stage(
                    arrays, self._vectors[: attrs.n_slots], attrs.tables_to_lists(), write_graph
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
                snap.meta, snap.arrays, snap.vectors, snap.tables, snap.graph_path, options
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
        graph_path: Path,
        options: dict[str, Any],
    ) -> VectorIndex:
        if meta.get("space") != "ip" or meta.get("graph") != "faiss-hnsw-sq8":
            raise ValueError("snapshot is not an inner-product faiss HNSW-SQ8 graph")
        arrays = dict(arrays)
        slot_of_fid = arrays.pop("slot_of_fid")
        attrs = AttributeStore.from_arrays(arrays, tables)
        n_slots = attrs.n_slots
        if n_slots != meta["n_slots"] or attrs.n_live != meta["n_live"]:
            raise ValueError("row counts do not match meta.json")
        index = cls(
            int(meta["dim"]),
            str(meta["model_name"]),
            m=int(meta["m"]),
            ef_construction=int(meta["ef_construction"]),
            initial_capacity=16,
            **options,
        )
        n_fids = int(meta["graph_nodes"])
        if slot_of_fid.dtype != np.int64 or slot_of_fid.shape != (n_fids,):
            raise ValueError("node map does not match meta.json")
        if saved_vectors.dtype != np.float16 or saved_vectors.shape != (n_slots, index.dim):
            raise ValueError(f"vectors have shape {saved_vectors.shape} / {saved_vectors.dtype}")
        graph = None
        if n_fids:
            graph = faiss.read_index(str(graph_path))
            if (
                not isinstance(graph, faiss.IndexHNSWSQ)
                or graph.d != index.dim
                or int(graph.ntotal) != n_fids
                or graph.metric_type != faiss.METRIC_INNER_PRODUCT
            ):
                raise ValueError("graph file does not match meta.json")
        elif graph_path.stat().st_size != 0:
            raise ValueError("graph file should be empty")
        live = attrs.col("live")
        alive = slot_of_fid >= 0
        placed = slot_of_fid[alive]
        if np.any(slot_of_fid < -1) or np.any(placed >= n_slots) or not np.all(live[placed]):
            raise ValueError("node map points at dead or missing rows")
        if len(np.unique(placed)) != len(placed):
            raise ValueError("node map holds a row twice")
        if attrs.capacity == n_slots:
            vectors = saved_vectors  # no second copy of what may be gigabytes
        else:
            vectors = np.zeros((attrs.capacity, index.dim), dtype=np.float16)
            vectors[:n_slots] = saved_vectors
        fid_of_slot = np.full(attrs.capacity, -1, dtype=np.int64)
        fid_of_slot[placed] = np.flatnonzero(alive)
        if len(placed):
            # The graph and the vector file were written together; a cheap spot check that
            # they still agree (the graph holds 8-bit codes: close, not equal).
            rng = np.random.default_rng(len(placed))
            fids = np.unique(rng.choice(np.flatnonzero(alive), min(256, len(placed))))
            coded = graph.reconstruct_batch(fids)
            stored = _widen(vectors[slot_of_fid[fids]])
            cosines = np.einsum("ij,ij->i", coded, stored) / np.maximum(
                np.linalg.norm(coded, axis=1), 1e-12
            )
            if np.any(cosines < 0.98):
                raise ValueError("graph vectors disagree with the vector file")
        index._attrs = attrs
        index._vectors = vectors
        index._graph = graph
        index._sq_trained_on = int(meta["sq_trained_on"])
        index._fid_of_slot = fid_of_slot
        index._slot_of_fid = np.full(max(1024, n_fids), -1, dtype=np.int64)
        index._slot_of_fid[:n_fids] = slot_of_fid
        index._n_dead = int(n_fids - len(placed))
        index._identity = index._n_dead == 0 and np.array_equal(
            slot_of_fid, np.arange(n_fids, dtype=np.int64)
        )
        pending = np.flatnonzero(live & (fid_of_slot[:n_slots] < 0))
        index._n_pending = len(pending)
        if index.graph_mode == "sync":
            with index._lock.write():
                if len(pending):
                    index._graph_add(pending, _widen(vectors[pending]))
                    index._n_pending = 0
                index._maybe_rebuild_sync()
        else:
            index._queue.extend(pending.tolist())
            index._wake_builder()
        index.synced_seq = int(meta["synced_seq"])
        return index
