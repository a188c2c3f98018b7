"""The one switch between the quick forms of the reliability tests (``make test``) and their
long forms (``make soak``, which sets ``AEGIS_SOAK=1``), and where their figures go."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

SOAK = os.environ.get("AEGIS_SOAK") == "1"
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def quick_or_soak(quick: int, soak: int) -> int:
    """The size of a run: ``quick`` under ``make test``, ``soak`` under ``make soak``."""
    return soak if SOAK else quick


def report(name: str, figures: dict[str, Any]) -> None:
    """Print a test's figures and keep them in benchmarks/results/reliability-<name>.json, so
    that docs/guides/reliability.md can cite a command and its output."""
    stamped = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "mode": "soak" if SOAK else "quick", **figures}
    print(f"\n[reliability] {name}: {json.dumps(stamped)}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"reliability-{name}-{stamped['mode']}.json").write_text(
        json.dumps(stamped, indent=2) + "\n")
