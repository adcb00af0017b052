# Two commands matter: `make demo` (the main job: five hospitals, examples/hospital_federation.py)
# and `make test` (the whole suite).
# Both build .venv from constraints.txt first, so a fresh machine needs nothing installed by hand.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := dev,torch,opacus,pq-extra,examples,flower,fuzz,fast

.PHONY: demo demo-sim test lint format bench bench-quick fuzz clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/hospital_federation.py

demo-sim: $(STAMP)
	$(BIN)/fhe-agg simulate --clients 8 --holders 5 --threshold 3 --params 200000 --rounds 2 --dp

# pytest-xdist: one worker per core (TEST_WORKERS=0 runs in one process); each test file stays
# on one worker, so its module fixtures (real keys, proofs) are built once.
TEST_WORKERS ?= auto
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check fhe_agg tests benchmarks examples fuzz
	$(BIN)/ruff format --check fhe_agg tests benchmarks examples fuzz
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format fhe_agg tests benchmarks examples fuzz
	$(BIN)/ruff check --fix fhe_agg tests benchmarks examples fuzz

# Every parser under atheris for FUZZ_RUNS inputs each (see fuzz/README.md); about half an hour.
FUZZ_RUNS ?= 100000
fuzz: $(STAMP)
	$(BIN)/python fuzz/run_all.py --runs $(FUZZ_RUNS)

bench-quick: $(STAMP)
	$(BIN)/python benchmarks/run.py --quick

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
