"""Shared pieces of the crash, concurrency and resource tests: killing a server's whole process
tree, reading its /proc entries and /metrics, timing operations, and texts that are easy to
tell apart (so that a query for one memory's own text finds that memory first).

The servers are the real ``aegis serve`` processes of ``tests/conftest.py``; nothing here
replaces any part of them.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import statistics
import time
from collections import defaultdict
from pathlib import Path

import httpx

from tests.conftest import ServerProcess

AUTH = {"Authorization": "Bearer dev-key"}


# ----------------------------------------------------------------------------- processes


def _children_of() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc (Linux)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children[ppid].append(int(entry.name))
    return children


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn's supervisor and its workers)."""
    children = _children_of()
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie holds no sockets or files any more


def kill_server(server: ServerProcess) -> int:
    """SIGKILL the server and every worker it started, as a power cut or the OOM killer
    would: no shutdown hook runs. The supervisor is frozen first (SIGSTOP) so it cannot
    start a replacement worker while its tree is read. Returns how many processes died."""
    assert server.proc is not None
    root = server.proc.pid
    os.kill(root, signal.SIGSTOP)
    tree = process_tree(root)
    for pid in tree:
        with contextlib.suppress(ProcessLookupError):  # exited meanwhile
            os.kill(pid, signal.SIGKILL)
    server.proc.wait(timeout=30)
    server.proc = None
    deadline = time.monotonic() + 30
    while not all(_gone(pid) for pid in tree):  # workers are reaped by init, not by us
        assert time.monotonic() < deadline, "a killed worker did not exit"
        time.sleep(0.02)
    return len(tree)


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes (VmRSS), summed."""
    total = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def open_fds(pids: list[int]) -> int:
    """Open file descriptors of these processes (entries of /proc/<pid>/fd), summed."""
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pids)


# ----------------------------------------------------------------------------- /metrics


def metric(base_url: str, name: str) -> float | None:
    """The value of one unlabelled sample on /metrics, or None when it is not exported."""
    text = httpx.get(base_url + "/metrics", timeout=30).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


# ----------------------------------------------------------------------------- timings


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


class Latencies:
    """Seconds per operation name; summarised as milliseconds."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = defaultdict(list)

    def record(self, op: str, seconds: float) -> None:
        self.samples[op].append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for op, values in sorted(self.samples.items()):
            out[op] = {
                "n": len(values),
                "p50_ms": round(percentile(values, 50) * 1000, 1),
                "p95_ms": round(percentile(values, 95) * 1000, 1),
                "p99_ms": round(percentile(values, 99) * 1000, 1),
                "max_ms": round(max(values) * 1000, 1),
            }
        every = [v for values in self.samples.values() for v in values]
        if every:
            out["all"] = {"n": len(every),
                          "p50_ms": round(percentile(every, 50) * 1000, 1),
                          "p95_ms": round(percentile(every, 95) * 1000, 1),
                          "p99_ms": round(percentile(every, 99) * 1000, 1),
                          "max_ms": round(max(every) * 1000, 1)}
        return out


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per minute (0 for fewer than 2)."""
    if len(points) < 2:
        return 0.0
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    if max(xs) == min(xs):
        return 0.0
    return statistics.linear_regression(xs, ys).slope * 60


# ----------------------------------------------------------------------------- texts

_WORDS = (
    "amber", "basalt", "cedar", "delta", "ember", "fjord", "glacier", "harbor", "indigo",
    "juniper", "kelp", "lagoon", "meadow", "nebula", "orchid", "pylon", "quartz", "reef",
    "saffron", "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr", "falcon",
    "otter", "badger", "heron", "lynx", "marten", "osprey", "puffin", "raven", "stoat", "walrus",
    "bison", "coyote", "kernel", "socket", "ledger", "compiler", "router", "cache", "sensor",
    "turbine", "valve", "piston", "gasket", "rotor",
)


class Texts:
    """Distinct memory texts: a tag, a serial number and six random words, so that any two
    differ in meaning enough that a query for one text ranks that memory first."""

    def __init__(self, tag: str, seed: int) -> None:
        self.tag = tag
        self.rng = random.Random(seed)
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        words = " ".join(self.rng.sample(_WORDS, 6))
        return f"{self.tag} note {self.n}: {words}"
