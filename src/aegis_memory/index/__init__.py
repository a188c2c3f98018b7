"""Filtered vector index: a derived, persisted, rebuildable cache beside the database.

Public API::

    from aegis_memory.index import IndexedRow, SearchFilter, VectorIndex

    index = VectorIndex(dim=384, model_name="all-MiniLM-L6-v2")
    index.upsert(rows, vectors)                  # float32 (n, dim); stored as float16
    hits = index.search(query, k=10, flt=SearchFilter(project_id="p", namespace=None, now=t))
    index.save(directory)                        # atomic
    index = VectorIndex.load(directory, dim=384, model_name=...)  # None -> rebuild from DB

See :mod:`aegis_memory.index.vector_index` for the query planner.
"""

from aegis_memory.index.filters import (
    KNOWN_SCOPES,
    MEMORY_TYPES,
    SCOPE_GLOBAL,
    SCOPE_PRIVATE,
    SCOPE_SHARED,
    IndexedRow,
    SearchFilter,
    is_visible,
    row_matches,
)
from aegis_memory.index.persistence import FORMAT_VERSION
from aegis_memory.index.vector_index import PlanMode, VectorIndex

__all__ = [
    "FORMAT_VERSION",
    "KNOWN_SCOPES",
    "MEMORY_TYPES",
    "SCOPE_GLOBAL",
    "SCOPE_PRIVATE",
    "SCOPE_SHARED",
    "IndexedRow",
    "PlanMode",
    "SearchFilter",
    "VectorIndex",
    "is_visible",
    "row_matches",
]
