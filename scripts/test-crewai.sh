#!/usr/bin/env bash
# Run the CrewAI integration tests in their own virtualenv.
#
# CrewAI pins mcp<2 while the main environment has mcp 2.x (the [mcp] extra), so the CrewAI
# tests cannot share `.venv`. This script keeps `.venv-crewai` next to it, reinstalls only when
# pyproject.toml changed (stamp file, like the Makefile's `.installed-*`), and runs
# `pytest tests/crewai` with CrewAI's tracing off and no LLM key in sight.
#
#   scripts/test-crewai.sh              # all CrewAI tests
#   scripts/test-crewai.sh -k kickoff   # extra arguments go to pytest
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-crewai"
STAMP="$VENV/.installed-crewai"
PYTHON="${PYTHON:-python3}"

cd "$ROOT"

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi

if [[ ! -f "$STAMP" || pyproject.toml -nt "$STAMP" ]]; then
  echo "Installing aegis-memory[server,crewai] into $VENV ..."
  "$VENV/bin/pip" install --quiet -e "$ROOT[server,crewai]" \
    'pytest>=8,<10' 'pytest-asyncio>=0.23,<2'
  touch "$STAMP"
fi

export CREWAI_TRACING_ENABLED=false
export CREWAI_DISABLE_TELEMETRY=true
export OTEL_SDK_DISABLED=true
export HF_HUB_OFFLINE=1
unset OPENAI_API_KEY ANTHROPIC_API_KEY

exec "$VENV/bin/python" -m pytest -q tests/crewai "$@"
