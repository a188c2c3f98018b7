# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: run test soak lint bench bench-quick bench-quality bench-index bench-engine bench-embed clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"' \
	  || (echo "Aegis Memory needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Re-install only when the package definition changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[server,postgres]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed-run

## make run: start the server on the embedded default (SQLite + local embeddings).
## Honours HOST, PORT, AEGIS_DATA_DIR, DATABASE_URL, ... (see README).
run: $(VENV)/.installed-run
	$(BIN)/aegis serve

## make test: the whole suite against real servers on loopback (CrewAI's tests in their own
## venv, .venv-crewai, because CrewAI pins mcp<2).
test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	bash scripts/test-crewai.sh

## make soak: the reliability suite's long forms (tests/reliability): thousands of fuzzed
## requests per backend, SIGKILL crash loops, 64 clients for a minute, a 10-minute resource
## soak. Prints the figures reported in docs/guides/reliability.md. About 45 minutes.
soak: $(VENV)/.installed-dev
	AEGIS_SOAK=1 $(BIN)/python -m pytest -q -s tests/reliability $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks scripts

$(VENV)/.installed-bench: pyproject.toml | $(VENV)/.installed-dev
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	@touch $@

## make bench: the performance suite at 10k, 100k and 1M memories, and mem0 side by side at
## 20k (mem0 and torch live in their own venv, .venv-mem0). About an hour the first time:
## the corpus's embeddings are computed once and cached in benchmarks/.cache/.
bench: $(VENV)/.installed-bench
	bash scripts/setup-mem0-venv.sh
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

## make bench-quick: the same suite at 2k and 10k memories (mem0 at 2k), about 9 minutes.
bench-quick: $(VENV)/.installed-bench
	bash scripts/setup-mem0-venv.sh
	$(BIN)/python benchmarks/bench.py --quick $(BENCH_ARGS)

## make bench-quality: retrieval quality on LoCoMo (../shared/data/locomo): recall@5/10/20 and
## MRR per search mode and category, ingest rate, query p50/p95, a pass/fail line per target of
## issue 9. A few minutes; BENCH_ARGS="--conversations 1" for a quick look.
bench-quality: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/locomo_recall.py $(BENCH_ARGS)

bench-index: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/vector_index_bench.py --json benchmarks/results/vector_index.json

bench-engine: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/engine_query_bench.py --json benchmarks/results/engine_query.json

bench-engine-pg: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/engine_query_bench.py --backend postgres --json benchmarks/results/engine_query_pg.json

bench-embed: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/embedding_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
