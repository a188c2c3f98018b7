"""CrewAI tests run in their own environment (``scripts/test-crewai.sh``: CrewAI pins mcp<2).

The main test run passes ``--ignore=tests/crewai``; should it not, an environment without
CrewAI skips collecting these files instead of failing on the import. The fixtures of
``tests/conftest.py`` (real ``aegis serve`` subprocesses) apply here as everywhere.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("crewai") is None:
    collect_ignore_glob = ["test_*.py"]
