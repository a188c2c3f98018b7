"""Columnar attribute store: turns a :class:`SearchFilter` into a set of candidate slots.

Why columnar: a filter must be evaluated for every row it could match on each query, and
doing that in Python per row costs ~1 µs a row (100 ms at 100k rows). Keeping every
attribute as an interned integer/float column lets numpy evaluate a filter over 100k rows
in well under a millisecond.

Why slots rather than labels as array indices: labels are database row ids that grow
forever and may be sparse (or huge), so indexing arrays by label could waste unbounded
memory. Each live label owns a dense *slot* instead; freed slots are reused, so the arrays
(and the HNSW graph, which uses slots as its labels) stay as large as the live set plus
the deletions not yet reused.

Why partitions: one project or namespace is often a small part of a large store. Every
live slot belongs to exactly one (project, namespace) partition whose slot list is kept up
to date, so a filter on a small partition touches only that partition's rows instead of
scanning all columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from aegis_memory.index.filters import (
    KNOWN_SCOPES,
    SCOPE_GLOBAL,
    SCOPE_SHARED,
    IndexedRow,
    SearchFilter,
)

NONE_CODE = -1
"""Code stored for a missing (``None``) agent or user id."""
UNKNOWN_CODE = -2
"""Code a query gets for a string the store has never seen: matches no row."""

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
ColumnGetter = Callable[[str], np.ndarray]

# When the base partitions hold at most this fraction of all slots, gather their columns
# (random access, ~3-4x the cost per element of a contiguous scan) instead of scanning the
# whole columns.
_GATHER_FRACTION = 0.25


class StringTable:
    """Interns strings to dense int32 codes so columns compare integers, not strings.

    Codes are never freed: the vocabulary (projects, namespaces, agents, users, types) is
    small compared with the rows, and stable codes keep persisted columns valid.
    """

    __slots__ = ("_codes", "_strings")

    def __init__(self, strings: Iterable[str] = ()) -> None:
        self._strings: list[str] = []
        self._codes: dict[str, int] = {}
        for s in strings:
            if s in self._codes:
                raise ValueError(f"duplicate string in table: {s!r}")
            self.intern(s)

    def intern(self, value: str) -> int:
        """Code for ``value``, assigning a new one if needed."""
        code = self._codes.get(value)
        if code is None:
            if not isinstance(value, str):
                raise TypeError(f"expected str, got {type(value).__name__}")
            code = len(self._strings)
            self._strings.append(value)
            self._codes[value] = code
        return code

    def intern_optional(self, value: str | None) -> int:
        """Like :meth:`intern` but maps ``None`` to :data:`NONE_CODE`."""
        return NONE_CODE if value is None else self.intern(value)

    def lookup(self, value: str) -> int:
        """Code for ``value`` or :data:`UNKNOWN_CODE` — querying never grows the table."""
        return self._codes.get(value, UNKNOWN_CODE)

    def known_codes(self, values: Iterable[str]) -> IntArray:
        """Codes of the values the table knows; unknown values can match nothing anyway."""
        codes = [self._codes[v] for v in values if v in self._codes]
        return np.asarray(sorted(codes), dtype=np.int64)

    def __len__(self) -> int:
        return len(self._strings)

    def to_list(self) -> list[str]:
        """The strings in code order (for persistence)."""
        return list(self._strings)


class _Partition:
    """Growable array of the live slots of one (project, namespace) pair.

    Removal swaps the last element into the hole (O(1)); the owner keeps each slot's
    position so it can find the hole without searching.
    """

    __slots__ = ("size", "slots")

    def __init__(self) -> None:
        self.slots: IntArray = np.empty(16, dtype=np.int64)
        self.size = 0

    def append(self, slot: int) -> int:
        if self.size == len(self.slots):
            grown = np.empty(len(self.slots) * 2, dtype=np.int64)
            grown[: self.size] = self.slots[: self.size]
            self.slots = grown
        self.slots[self.size] = slot
        self.size += 1
        return self.size - 1

    def remove_at(self, pos: int) -> int:
        """Remove the slot at ``pos``; returns the slot moved into ``pos`` or -1."""
        last = self.size - 1
        self.size = last
        if pos == last:
            return -1
        moved = int(self.slots[last])
        self.slots[pos] = moved
        return moved

    def view(self) -> IntArray:
        return self.slots[: self.size]


class Selection:
    """The rows a filter matched, as slots and/or a full-length mask.

    A column scan produces a mask (length ``n_slots``) and the HNSW filter callback
    needs exactly that, so the slot list is only derived from it when a plan asks for
    it (exact search); partition gathers produce slots directly.
    """

    __slots__ = ("_slots", "count", "mask", "scanned")

    def __init__(
        self, slots: IntArray | None, mask: BoolArray | None, scanned: str, count: int
    ) -> None:
        self._slots = slots
        self.mask = mask
        self.scanned = scanned  # "partition" (gathered), "scan" (full columns) or "none"
        self.count = count

    @property
    def slots(self) -> IntArray:
        if self._slots is None:
            assert self.mask is not None
            self._slots = np.flatnonzero(self.mask).astype(np.int64, copy=False)
        return self._slots


_EMPTY_SLOTS: IntArray = np.empty(0, dtype=np.int64)


def _empty_selection() -> Selection:
    return Selection(_EMPTY_SLOTS, None, "none", 0)


# Names and dtypes of the per-slot columns; persisted as-is.
COLUMN_DTYPES: dict[str, type[np.generic]] = {
    "label": np.int64,
    "project": np.int32,
    "namespace": np.int32,
    "agent": np.int32,
    "user": np.int32,
    "scope": np.int32,
    "mtype": np.int32,
    "expires": np.float64,
    "effectiveness": np.float64,
    "deprecated": np.bool_,
    "live": np.bool_,
}
TABLE_NAMES: tuple[str, ...] = ("project", "namespace", "agent", "user", "scope", "mtype")


class AttributeStore:
    """Per-slot attribute columns, label↔slot map, partitions and the shared-with map.

    Not thread-safe by itself: :class:`~aegis_memory.index.vector_index.VectorIndex`
    serialises writers and lets readers share access.
    """

    def __init__(self, capacity: int = 1024) -> None:
        capacity = max(16, int(capacity))
        self.tables: dict[str, StringTable] = {name: StringTable() for name in TABLE_NAMES}
        for scope in KNOWN_SCOPES:
            self.tables["scope"].intern(scope)
        self._cols: dict[str, np.ndarray] = {
            name: np.zeros(capacity, dtype=dtype) for name, dtype in COLUMN_DTYPES.items()
        }
        self._part_id = np.full(capacity, -1, dtype=np.int32)
        self._part_pos = np.zeros(capacity, dtype=np.int64)
        self.n_slots = 0  # high-water mark: every slot below it has been used
        self.n_live = 0
        self.n_expiring = 0  # live rows with expires_at < inf (the expiry test is skipped at 0)
        self.n_deprecated = 0  # live deprecated rows
        self.label_to_slot: dict[int, int] = {}
        self._free: list[int] = []
        self._partitions: list[_Partition] = []
        self._part_key: dict[tuple[int, int], int] = {}
        self._project_parts: dict[int, list[int]] = {}
        # agent code -> slots whose shared_with names that agent (scope checked at query).
        self._shared: dict[int, set[int]] = {}
        self._shared_of_slot: dict[int, tuple[int, ...]] = {}
        self._shared_cache: dict[int, IntArray] = {}

    # ------------------------------------------------------------------ columns

    def col(self, name: str) -> np.ndarray:
        """Column ``name`` over the used slots (a view, do not write through it)."""
        return self._cols[name][: self.n_slots]

    @property
    def capacity(self) -> int:
        return len(self._part_id)

    def _grow(self, needed: int) -> None:
        """Double the capacity until ``needed`` slots fit (amortised O(1) per insert)."""
        cap = self.capacity
        if needed <= cap:
            return
        while cap < needed:
            cap *= 2
        for name, arr in self._cols.items():
            grown = np.zeros(cap, dtype=arr.dtype)
            grown[: len(arr)] = arr
            self._cols[name] = grown
        part_id = np.full(cap, -1, dtype=np.int32)
        part_id[: len(self._part_id)] = self._part_id
        self._part_id = part_id
        part_pos = np.zeros(cap, dtype=np.int64)
        part_pos[: len(self._part_pos)] = self._part_pos
        self._part_pos = part_pos

    # ------------------------------------------------------------------ writes

    def slots_for(self, labels: Sequence[int]) -> tuple[IntArray, list[bool]]:
        """Slot of each label, allocating slots for unknown labels (not yet live).

        Returns the slots and, for each, whether it was newly allocated. Newly allocated
        slots become live only in :meth:`set_rows`; :meth:`forget_new` undoes them.
        """
        slots = np.empty(len(labels), dtype=np.int64)
        new: list[bool] = []
        extra = max(0, len(labels) - len(self._free))
        self._grow(self.n_slots + extra)
        for i, label in enumerate(labels):
            slot = self.label_to_slot.get(label)
            if slot is None:
                if self._free:
                    slot = self._free.pop()
                else:
                    slot = self.n_slots
                    self.n_slots += 1
                self.label_to_slot[label] = slot
                self._cols["label"][slot] = label
                new.append(True)
            else:
                new.append(False)
            slots[i] = slot
        return slots, new

    def forget_new(self, labels: Sequence[int], slots: IntArray, new: list[bool]) -> None:
        """Undo :meth:`slots_for` allocations whose rows never became live."""
        for label, slot, is_new in zip(labels, slots.tolist(), new, strict=True):
            if is_new and not self._cols["live"][slot]:
                del self.label_to_slot[label]
                self._free.append(slot)

    def existing_slots(self, labels: Iterable[int]) -> tuple[list[int], list[int]]:
        """(labels, slots) of the given labels that are in the store; others are skipped."""
        found_labels: list[int] = []
        found_slots: list[int] = []
        for label in labels:
            slot = self.label_to_slot.get(label)
            if slot is not None:
                found_labels.append(label)
                found_slots.append(slot)
        return found_labels, found_slots

    def set_rows(self, slots: IntArray, rows: Sequence[IndexedRow]) -> None:
        """Write the attributes of ``rows`` into ``slots`` and make them live.

        ``slots`` must be distinct (callers de-duplicate labels first).
        """
        if len(rows) == 0:
            return
        t = self.tables
        cols = self._cols
        live = cols["live"]
        old_live = live[slots]
        self.n_expiring -= int(np.count_nonzero((cols["expires"][slots] < math.inf) & old_live))
        self.n_deprecated -= int(np.count_nonzero(cols["deprecated"][slots] & old_live))

        project = np.fromiter(
            (t["project"].intern(r.project_id) for r in rows), np.int32, len(rows)
        )
        namespace = np.fromiter(
            (t["namespace"].intern(r.namespace) for r in rows), np.int32, len(rows)
        )
        cols["project"][slots] = project
        cols["namespace"][slots] = namespace
        cols["agent"][slots] = [t["agent"].intern_optional(r.agent_id) for r in rows]
        cols["user"][slots] = [t["user"].intern_optional(r.user_id) for r in rows]
        cols["scope"][slots] = [t["scope"].intern(r.scope) for r in rows]
        cols["mtype"][slots] = [t["mtype"].intern(r.memory_type) for r in rows]
        expires = np.array(
            [math.inf if r.expires_at is None else float(r.expires_at) for r in rows],
            dtype=np.float64,
        )
        cols["expires"][slots] = expires
        cols["effectiveness"][slots] = [float(r.effectiveness) for r in rows]
        deprecated = np.array([bool(r.deprecated) for r in rows], dtype=np.bool_)
        cols["deprecated"][slots] = deprecated
        live[slots] = True
        self.n_live += int(len(rows) - np.count_nonzero(old_live))
        self.n_expiring += int(np.count_nonzero(expires < math.inf))
        self.n_deprecated += int(np.count_nonzero(deprecated))

        slot_list = slots.tolist()
        for slot, p, ns in zip(slot_list, project.tolist(), namespace.tolist(), strict=True):
            self._place(slot, p, ns)
        agent_table = t["agent"]
        for slot, row in zip(slot_list, rows, strict=True):
            codes = tuple(sorted({agent_table.intern(a) for a in row.shared_with}))
            if codes != self._shared_of_slot.get(slot, ()):
                self._set_shared(slot, codes)

    def release(self, slots: Iterable[int]) -> None:
        """Make ``slots`` dead and free them for reuse by later inserts."""
        cols = self._cols
        for slot in slots:
            if not cols["live"][slot]:
                continue
            cols["live"][slot] = False
            self.n_live -= 1
            if cols["expires"][slot] < math.inf:
                self.n_expiring -= 1
            if cols["deprecated"][slot]:
                self.n_deprecated -= 1
            self._unplace(slot)
            if slot in self._shared_of_slot:
                self._set_shared(slot, ())
            del self.label_to_slot[int(cols["label"][slot])]
            self._free.append(slot)

    def _place(self, slot: int, project: int, namespace: int) -> None:
        """Put ``slot`` into the partition of (project, namespace), moving it if needed."""
        key = (project, namespace)
        pid = self._part_key.get(key)
        if pid is None:
            pid = len(self._partitions)
            self._partitions.append(_Partition())
            self._part_key[key] = pid
            self._project_parts.setdefault(project, []).append(pid)
        current = int(self._part_id[slot])
        if current == pid:
            return
        if current >= 0:
            self._unplace(slot)
        self._part_pos[slot] = self._partitions[pid].append(slot)
        self._part_id[slot] = pid

    def _unplace(self, slot: int) -> None:
        pid = int(self._part_id[slot])
        if pid < 0:
            return
        moved = self._partitions[pid].remove_at(int(self._part_pos[slot]))
        if moved >= 0:
            self._part_pos[moved] = self._part_pos[slot]
        self._part_id[slot] = -1

    def _set_shared(self, slot: int, codes: tuple[int, ...]) -> None:
        for code in self._shared_of_slot.pop(slot, ()):
            members = self._shared[code]
            members.discard(slot)
            if not members:
                del self._shared[code]
            self._shared_cache.pop(code, None)
        if codes:
            self._shared_of_slot[slot] = codes
            for code in codes:
                self._shared.setdefault(code, set()).add(slot)
                self._shared_cache.pop(code, None)

    def _shared_slots(self, agent_code: int) -> IntArray:
        """Slots whose shared_with lists the agent, cached until that set changes.

        Readers may call this concurrently; the worst case is two readers building the
        same array, which is harmless.
        """
        cached = self._shared_cache.get(agent_code)
        if cached is None:
            members = self._shared.get(agent_code, ())
            cached = np.fromiter(members, dtype=np.int64, count=len(members))
            self._shared_cache[agent_code] = cached
        return cached

    # ------------------------------------------------------------------ reads

    def select(self, flt: SearchFilter) -> Selection:
        """Evaluate ``flt`` and return the matching live slots.

        Two strategies give the same answer: when the filter's (project, namespace)
        partitions are a small part of the store, only their rows are gathered and
        tested; otherwise whole columns are scanned, which is faster per row and leaves
        a full-length mask for the HNSW filter callback.
        """
        projects = self.tables["project"]
        pcode = projects.lookup(flt.project_id)
        if pcode < 0:
            return _empty_selection()
        ncode = NONE_CODE
        if flt.namespace is not None:
            ncode = self.tables["namespace"].lookup(flt.namespace)
            pid = self._part_key.get((pcode, ncode))
            if pid is None:
                return _empty_selection()
            pids = [pid]
        else:
            pids = self._project_parts.get(pcode, [])
        base_size = sum(self._partitions[pid].size for pid in pids)
        if base_size == 0:
            return _empty_selection()

        gather = base_size <= _GATHER_FRACTION * self.n_slots
        base: IntArray | None = None
        if gather:
            if len(pids) == 1:
                base = self._partitions[pids[0]].view()
            else:
                base = np.concatenate([self._partitions[pid].view() for pid in pids])
            mask: BoolArray | None = None  # None = every base slot still matches
        else:
            n = self.n_slots
            mask = self._cols["live"][:n] & (self._cols["project"][:n] == pcode)
            if flt.namespace is not None:
                mask &= self._cols["namespace"][:n] == ncode

        gathered: dict[str, np.ndarray] = {}

        def column(name: str) -> np.ndarray:
            arr = gathered.get(name)
            if arr is None:
                arr = (
                    self._cols[name][base] if base is not None else self._cols[name][: self.n_slots]
                )
                gathered[name] = arr
            return arr

        conditions = self._conditions(flt, column, base)
        if conditions is None:
            return _empty_selection()
        for cond in conditions:
            mask = cond if mask is None else (mask & cond)

        if base is not None:
            slots = base.copy() if mask is None else base[mask]
            return Selection(slots, None, "partition", len(slots))
        assert mask is not None
        return Selection(None, mask, "scan", int(np.count_nonzero(mask)))

    def _conditions(
        self,
        flt: SearchFilter,
        column: ColumnGetter,
        base: IntArray | None,
    ) -> list[BoolArray] | None:
        """Boolean arrays (over base slots or all slots) that must all hold.

        Returns ``None`` when the filter provably matches nothing (e.g. it names an
        agent, user or type the store has never seen).
        """
        conds: list[BoolArray] = []
        if self.n_expiring:
            conds.append(column("expires") > flt.now)
        if not flt.include_deprecated and self.n_deprecated:
            conds.append(~column("deprecated"))
        if flt.owner_agent_ids is not None:
            codes = self.tables["agent"].known_codes(flt.owner_agent_ids)
            if len(codes) == 0:
                return None
            conds.append(_in_codes(column("agent"), codes, len(self.tables["agent"])))
        if flt.user_id is not None:
            code = self.tables["user"].lookup(flt.user_id)
            if code < 0:
                return None
            conds.append(column("user") == code)
        if flt.scopes is not None:
            codes = self.tables["scope"].known_codes(flt.scopes)
            if len(codes) == 0:
                return None
            conds.append(_in_codes(column("scope"), codes, len(self.tables["scope"])))
        if flt.memory_types is not None:
            codes = self.tables["mtype"].known_codes(flt.memory_types)
            if len(codes) == 0:
                return None
            conds.append(_in_codes(column("mtype"), codes, len(self.tables["mtype"])))
        if flt.min_effectiveness is not None:
            conds.append(column("effectiveness") >= float(flt.min_effectiveness))
        if flt.restricts_visibility:
            assert flt.visible_to_agent is not None
            conds.append(self._visibility(flt.visible_to_agent, column, base))
        return conds

    def _visibility(self, agent_id: str, column: ColumnGetter, base: IntArray | None) -> BoolArray:
        """global OR owned by the agent OR (agent-shared AND agent in shared_with)."""
        scope_table = self.tables["scope"]
        scope = column("scope")
        visible = scope == scope_table.lookup(SCOPE_GLOBAL)
        code = self.tables["agent"].lookup(agent_id)
        if code < 0:
            return visible
        visible |= column("agent") == code
        shared = self._shared_slots(code)
        if len(shared):
            member = np.zeros(self.n_slots, dtype=np.bool_)
            member[shared] = True
            member_sel = member[base] if base is not None else member
            visible |= member_sel & (scope == scope_table.lookup(SCOPE_SHARED))
        return visible

    # ------------------------------------------------------------------ persistence

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Columns over the used slots plus the shared-with pairs, for saving."""
        out = {f"col_{name}": self.col(name).copy() for name in COLUMN_DTYPES}
        pairs = [(slot, code) for slot, codes in self._shared_of_slot.items() for code in codes]
        arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
        out["shared_slot"] = arr[:, 0].copy()
        out["shared_agent"] = arr[:, 1].copy()
        return out

    def tables_to_lists(self) -> dict[str, list[str]]:
        return {name: table.to_list() for name, table in self.tables.items()}

    @classmethod
    def from_arrays(
        cls, arrays: dict[str, np.ndarray], tables: dict[str, list[str]]
    ) -> AttributeStore:
        """Rebuild a store from :meth:`to_arrays` output, validating everything.

        Raises ``ValueError`` on any inconsistency, so a damaged file is rejected rather
        than producing wrong search results.
        """
        if set(tables) != set(TABLE_NAMES):
            raise ValueError("string tables are missing or unexpected")
        if tables["scope"][: len(KNOWN_SCOPES)] != list(KNOWN_SCOPES):
            raise ValueError("scope table does not start with the known scopes")
        cols: dict[str, np.ndarray] = {}
        n = None
        for name, dtype in COLUMN_DTYPES.items():
            arr = arrays[f"col_{name}"]
            if arr.dtype != np.dtype(dtype) or arr.ndim != 1:
                raise ValueError(f"column {name} has dtype {arr.dtype} / ndim {arr.ndim}")
            if n is None:
                n = len(arr)
            elif len(arr) != n:
                raise ValueError(f"column {name} has length {len(arr)}, expected {n}")
            cols[name] = arr
        assert n is not None
        live = cols["live"]
        for name in TABLE_NAMES:
            codes = cols[name][live]
            low = NONE_CODE if name in ("agent", "user") else 0
            if len(codes) and (codes.min() < low or codes.max() >= len(tables[name])):
                raise ValueError(f"column {name} has codes outside its table")
        labels = cols["label"][live]
        if len(labels) and labels.min() <= 0:
            raise ValueError("non-positive label")
        if len(np.unique(labels)) != len(labels):
            raise ValueError("duplicate labels")
        if np.isnan(cols["expires"][live]).any() or np.isnan(cols["effectiveness"][live]).any():
            raise ValueError("NaN in float columns")

        store = cls(capacity=max(n, 16))
        store.tables = {name: StringTable(tables[name]) for name in TABLE_NAMES}
        for name, arr in cols.items():
            store._cols[name][:n] = arr
        store.n_slots = n
        live_slots = np.flatnonzero(live)
        store.n_live = len(live_slots)
        store.n_expiring = int(np.count_nonzero(cols["expires"][live] < math.inf))
        store.n_deprecated = int(np.count_nonzero(cols["deprecated"][live]))
        store.label_to_slot = dict(zip(labels.tolist(), live_slots.tolist(), strict=True))
        store._free = np.flatnonzero(~live).tolist()[::-1]  # pop() reuses low slots first
        projects = cols["project"][live_slots].tolist()
        namespaces = cols["namespace"][live_slots].tolist()
        for slot, p, ns in zip(live_slots.tolist(), projects, namespaces, strict=True):
            store._place(slot, p, ns)

        shared_slot = arrays["shared_slot"]
        shared_agent = arrays["shared_agent"]
        if shared_slot.shape != shared_agent.shape or shared_slot.ndim != 1:
            raise ValueError("shared-with arrays are malformed")
        grouped: dict[int, set[int]] = {}
        n_agents = len(store.tables["agent"])
        for slot, code in zip(shared_slot.tolist(), shared_agent.tolist(), strict=True):
            if not (0 <= slot < n and live[slot] and 0 <= code < n_agents):
                raise ValueError("shared-with pair refers to a dead slot or unknown agent")
            grouped.setdefault(slot, set()).add(code)
        for slot, codes in grouped.items():
            store._set_shared(slot, tuple(sorted(codes)))
        return store


def _in_codes(column: np.ndarray, codes: IntArray, table_size: int) -> BoolArray:
    """Membership of an int column in a code set, cheapest form first.

    One or two codes: direct comparisons. More: a lookup table indexed by code (shifted
    by one so ``NONE_CODE`` = -1 maps to entry 0), one gather per row; ``np.isin`` sorts
    instead and was measured several times slower on 100k rows with 20 codes. Column
    codes are always below ``table_size`` because every stored code came from the table.
    """
    if len(codes) == 1:
        return column == codes[0]
    if len(codes) == 2:
        return (column == codes[0]) | (column == codes[1])
    lut = np.zeros(table_size + 1, dtype=np.bool_)
    lut[codes + 1] = True
    return lut[column + 1]
