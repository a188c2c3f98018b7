"""On-disk snapshot format of the vector index: atomic to write, paranoid to read.

The index is a cache of the database, so the only unacceptable outcomes are a crashed
server or wrong results; "no usable snapshot, rebuild from the database" is always fine.
Hence:

* Every save writes a new *generation* of data files under fresh names, and commits it by
  atomically replacing ``meta.json`` (which names the generation). A crash at any point
  leaves either the old snapshot or the new one, never a mix. Old generations are removed
  only after the commit.
* ``meta.json`` records the size and SHA-256 of every data file. They are checked *before*
  faiss parses the graph file, because faiss trusts the sizes stored in it and a damaged
  file could crash the process instead of raising.
* ``FORMAT_VERSION`` names the layout. Version 2 (faiss HNSW over 8-bit codes, float16
  vectors, a node -> slot map) replaced version 1 (hnswlib); a snapshot of another version
  is not used, so the owner rebuilds the index from the database, and the next save removes
  the old files.
* Reading never raises for a bad snapshot: it returns ``None`` and logs why.
* Several processes may save into one directory (``aegis serve --workers N`` on SQLite):
  commits take an exclusive lock on ``.lock`` there, and the clean-up after a commit leaves
  other processes' temporary files alone while they may still be written, so one worker
  never deletes what another is about to commit. The last commit wins; any worker's snapshot
  is a valid starting point, since start-up replays what came after it from the database.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FORMAT_NAME = "aegis-vector-index"
FORMAT_VERSION = 2
META_FILE = "meta.json"

_GRAPH = "graph-{gen}.faiss"
_ARRAYS = "attrs-{gen}.npz"
_TABLES = "strings-{gen}.json"
_VECTORS = "vectors-{gen}.npy"
# Files this module owns in the directory (anything else there is left alone); hnsw-*.bin
# is version 1's graph file, removed by the first save over such a snapshot.
_OWNED = re.compile(
    r"^(graph-[0-9a-f]+\.faiss|hnsw-[0-9a-f]+\.bin|attrs-[0-9a-f]+\.npz|vectors-[0-9a-f]+\.npy"
    r"|strings-[0-9a-f]+\.json|\..*\.tmp)$"
)


@dataclass(slots=True)
class Snapshot:
    """A verified snapshot: metadata, attribute arrays, vectors, string tables, graph file."""

    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]
    vectors: np.ndarray
    tables: dict[str, list[str]]
    graph_path: Path


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # Makes the renames durable; not supported everywhere (e.g. Windows), hence best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: A temporary file untouched this long belongs to a save that died; younger ones may be
#: another process's save in progress.
STALE_TEMP_SECONDS = 3600.0
LOCK_FILE = ".lock"


@contextlib.contextmanager
def _commit_lock(directory: Path) -> Iterator[None]:
    """Exclusive across processes (POSIX ``flock``; elsewhere, single-process use only)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with (directory / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _removable(entry: Path, keep: set[str], now: float) -> bool:
    """An old generation's file, or a temporary file left behind by a dead save."""
    if entry.name in keep or not _OWNED.match(entry.name):
        return False
    if entry.name.endswith(".tmp"):
        try:
            return now - entry.stat().st_mtime > STALE_TEMP_SECONDS
        except FileNotFoundError:  # committed or aborted meanwhile by its owner
            return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


class StagedSnapshot:
    """A snapshot written to temporary files, not yet committed.

    Saving is split in two so the index lock is held only while the data is copied out
    (:meth:`stage`); the slow part - fsync, SHA-256, renames (:meth:`commit`) - runs
    without it, so writers (and the searches queued behind them) wait less.

    The vectors get their own ``.npy`` file (float16): the graph file holds only their
    8-bit codes.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.gen = uuid.uuid4().hex
        self.final = {
            "graph": self.directory / _GRAPH.format(gen=self.gen),
            "arrays": self.directory / _ARRAYS.format(gen=self.gen),
            "vectors": self.directory / _VECTORS.format(gen=self.gen),
            "tables": self.directory / _TABLES.format(gen=self.gen),
        }
        self.temps = {key: self.directory / f".{p.name}.tmp" for key, p in self.final.items()}
        self.meta_tmp = self.directory / f".{META_FILE}.{self.gen}.tmp"

    def stage(
        self,
        arrays: dict[str, np.ndarray],
        vectors: np.ndarray,
        tables: dict[str, list[str]],
        write_graph: Callable[[Path], None],
    ) -> None:
        """Write the data files under temporary names (the part that needs the lock)."""
        try:
            write_graph(self.temps["graph"])
            with self.temps["arrays"].open("wb") as fh:
                np.savez(fh, **arrays)
            with self.temps["vectors"].open("wb") as fh:
                np.save(fh, vectors, allow_pickle=False)
            with self.temps["tables"].open("w", encoding="utf-8") as fh:
                json.dump(tables, fh, ensure_ascii=False)
        except BaseException:
            self.abort()
            raise

    def commit(self, meta: dict[str, Any]) -> None:
        """Make the staged files durable and the current snapshot; drop older ones."""
        with _commit_lock(self.directory):
            self._commit(meta)

    def _commit(self, meta: dict[str, Any]) -> None:
        directory = self.directory
        try:
            files: dict[str, dict[str, Any]] = {}
            for key, tmp in self.temps.items():
                _fsync_file(tmp)
                files[key] = {
                    "name": self.final[key].name,
                    "size": tmp.stat().st_size,
                    "sha256": _sha256(tmp),
                }
                os.replace(tmp, self.final[key])
            full_meta = {
                **meta,
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "generation": self.gen,
                "files": files,
            }
            with self.meta_tmp.open("w", encoding="utf-8") as fh:
                json.dump(full_meta, fh, indent=2, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(self.meta_tmp, directory / META_FILE)  # the commit point
            _fsync_dir(directory)
        except BaseException:
            self.abort()
            raise
        keep = {f["name"] for f in files.values()}
        now = time.time()
        for entry in directory.iterdir():
            if _removable(entry, keep, now):
                try:
                    entry.unlink()
                except OSError:  # pragma: no cover - e.g. a concurrent reader on Windows
                    log.warning("could not remove old index file %s", entry)

    def abort(self) -> None:
        """Remove this generation's files (the previous snapshot stays committed)."""
        for path in [*self.temps.values(), *self.final.values(), self.meta_tmp]:
            path.unlink(missing_ok=True)


def write_snapshot(
    directory: Path,
    meta: dict[str, Any],
    arrays: dict[str, np.ndarray],
    vectors: np.ndarray,
    tables: dict[str, list[str]],
    write_graph: Callable[[Path], None],
) -> None:
    """Stage and commit a snapshot in one go (see :class:`StagedSnapshot`)."""
    staged = StagedSnapshot(directory)
    staged.stage(arrays, vectors, tables, write_graph)
    staged.commit(meta)


def read_snapshot(directory: Path, *, dim: int, model_name: str) -> Snapshot | None:
    """Read and verify the committed snapshot; ``None`` (and a log line) if unusable."""
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        log.info("no vector index snapshot in %s", directory)
        return None
    try:
        return _read_verified(directory, meta_path, dim=dim, model_name=model_name)
    except _Reject as exc:
        log.warning("vector index snapshot in %s not used: %s", directory, exc)
    except Exception as exc:  # corrupt data surfaces as many exception types
        log.warning("vector index snapshot in %s is unreadable: %r", directory, exc)
    return None


class _Reject(Exception):
    """A snapshot that is readable but not for us (other model, dim, version...)."""


def _read_verified(directory: Path, meta_path: Path, *, dim: int, model_name: str) -> Snapshot:
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise _Reject("meta.json is not an object")
    if meta.get("format") != FORMAT_NAME or meta.get("format_version") != FORMAT_VERSION:
        raise _Reject(f"format {meta.get('format')!r} v{meta.get('format_version')!r}")
    if meta.get("dim") != dim:
        raise _Reject(f"dim {meta.get('dim')!r} != {dim}")
    if meta.get("model_name") != model_name:
        raise _Reject(f"model {meta.get('model_name')!r} != {model_name!r}")
    files = meta.get("files")
    if not isinstance(files, dict) or set(files) != {"graph", "arrays", "vectors", "tables"}:
        raise _Reject("meta.json lists unexpected files")
    paths: dict[str, Path] = {}
    for key, info in files.items():
        name = info["name"]
        if not isinstance(name, str) or "/" in name or "\\" in name or not _OWNED.match(name):
            raise _Reject(f"bad file name {name!r}")
        path = directory / name
        if not path.is_file():
            raise _Reject(f"{name} is missing")
        if path.stat().st_size != info["size"]:
            raise _Reject(f"{name} has the wrong size")
        if _sha256(path) != info["sha256"]:
            raise _Reject(f"{name} fails its checksum")
        paths[key] = path
    with np.load(paths["arrays"], allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    vectors = np.load(paths["vectors"], allow_pickle=False)
    tables = json.loads(paths["tables"].read_text(encoding="utf-8"))
    if not isinstance(tables, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in tables.values()
    ):
        raise _Reject("string tables are malformed")
    return Snapshot(
        meta=meta, arrays=arrays, vectors=vectors, tables=tables, graph_path=paths["graph"]
    )
