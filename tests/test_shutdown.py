"""Graceful shutdown: on SIGTERM the server stops taking connections, lets the request in
flight finish and answer, saves the vector index and closes the database, and exits; a
restart over the same data finds everything that was acknowledged."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerProcess

HEADERS = {"Authorization": "Bearer dev-key"}
N = 1000  # per import (the most one request may carry), embedded by the server


def _import_body(ns: str, batch: int) -> dict[str, list[dict[str, str]]]:
    return {"memories": [
        {"id": uuid.uuid4().hex,
         "content": f"shutdown drill {batch} note {i}: ledger shard {i % 37}",
         "namespace": ns, "agent_id": "ops", "scope": "global"}
        for i in range(N)
    ]}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_sigterm_lets_the_request_in_flight_finish_and_keeps_its_writes(
    tmp_path: Path, start_server, backend: str
) -> None:
    server: ServerProcess = start_server(tmp_path / "data", backend=backend)
    ns = "drill-" + uuid.uuid4().hex[:8]
    outcome: dict[int, object] = {}
    bodies = [_import_body(ns, batch) for batch in range(2)]

    def long_import(i: int) -> None:
        try:
            r = httpx.post(server.base_url + "/memories/import", json=bodies[i],
                           headers=HEADERS, timeout=120)
            outcome[i] = (r.status_code, r.json())
        except httpx.HTTPError as exc:  # pragma: no cover - the failure this test catches
            outcome[i] = repr(exc)

    workers = [threading.Thread(target=long_import, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    # Wait until both imports are being served (the scrape itself is the third request).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metrics = httpx.get(server.base_url + "/metrics", timeout=10).text
        if any(line.startswith("aegis_http_requests_in_flight ") and float(line.split()[1]) >= 3
               for line in metrics.splitlines()):
            break
        time.sleep(0.01)
    else:  # pragma: no cover
        pytest.fail(f"the imports were never in flight together: {outcome}")

    assert server.proc is not None
    signalled = time.time()
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):  # no new connections once shutting down
        httpx.get(server.base_url + "/health", timeout=2)

    for w in workers:
        w.join(timeout=120)
    assert outcome == {i: (200, {"imported": N, "skipped": 0, "reembedded": N,
                                 "ids": [m["id"] for m in bodies[i]["memories"]]})
                       for i in range(2)}
    # uvicorn re-raises the signal once its shutdown is complete, so the exit status is the
    # signal's (what a supervisor expects of a process it asked to stop), or 0.
    assert server.proc.wait(timeout=60) in (0, -signal.SIGTERM)
    if backend == "sqlite":  # the index snapshot was written on the way out
        meta = server.data_dir / "index" / "meta.json"
        assert meta.exists() and meta.stat().st_mtime >= signalled

    restarted = ServerProcess(server.data_dir, env=server.env).start()
    try:
        r = httpx.post(restarted.base_url + "/memories/export", headers=HEADERS, timeout=60,
                       json={"namespace": ns})
        assert r.status_code == 200
        assert len([line for line in r.text.splitlines() if line.strip()]) == 2 * N
        found = httpx.post(restarted.base_url + "/memories/query", headers=HEADERS,
                           timeout=30, json={"query": "ledger shard 12", "namespace": ns,
                                             "agent_id": "ops", "mode": "vector"}).json()
        assert found["memories"], "the imported memories are searchable after the restart"
    finally:
        restarted.stop()
