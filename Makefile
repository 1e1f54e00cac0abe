# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed-stamp
OUT    ?= out

.PHONY: demo test test-fast lint types pytest bench clean browser fuzz golden native pure

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: check every shipped procedure, draw the pathway, run the baseline scenario.
demo: $(STAMP)
	$(BIN)/cpsim check --all
	$(BIN)/cpsim diagram west-midlands-2014 --format svg --out $(OUT)/west-midlands-2014.svg
	$(BIN)/cpsim diagram west-midlands-2014 --stage icpc --format png --out $(OUT)/west-midlands-2014-icpc.png
	$(BIN)/cpsim run scenarios/baseline.yaml --out $(OUT)/baseline --force
	@echo "Diagrams in $(OUT)/; baseline report: $(OUT)/baseline/report.html"

## bench: national year, engine rate (compiled and pure) against the reference loop and bare
## SimPy, speed-up. Builds the compiled modules first.
bench: native
	CPSIM_NATIVE=1 $(BIN)/python bench/bench.py

## native: compile the engine's hot modules with mypyc into build/native/ (needs a C compiler;
## about 30 s). The packages use the build while it matches the source (model/native.py);
## results are identical to pure Python (tests/test_native.py).
native: $(STAMP)
	$(BIN)/python tools/build_native.py

## pure: remove the compiled build; everything runs as pure Python again.
pure:
	$(BIN)/python tools/build_native.py --clean

## test: lint, strict types on all four packages, and the whole pytest suite.
test: lint types pytest

## test-fast: the inner loop: lint, types and every test not marked slow (a few minutes).
test-fast: lint types
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q -m "not slow"

## golden: regenerate the golden outputs (tests/golden/) after an intended change of results;
## review `git diff tests/golden` before committing.
golden: $(STAMP)
	CPSIM_REGEN_GOLDEN=1 $(BIN)/pytest -q tests/test_golden.py

## fuzz: the fuzz suite at length: 2000 malformed files per input surface, 10 s each at most.
fuzz: $(STAMP)
	CPSIM_FUZZ_EXAMPLES=2000 CPSIM_FUZZ_DEADLINE_MS=10000 $(BIN)/pytest -q tests/test_fuzz.py

lint: $(STAMP)
	$(BIN)/ruff check .

types: $(STAMP)
	$(BIN)/mypy --strict model simulations reports cpsim

## browser: Debian's Chromium (about 130 packages with its libraries), for the explorer's
## tests in a real headless browser (`cpsim explore`); installed with apt-get as root, or
## through sudo. Where it cannot be installed those tests are skipped with the reason,
## except in CI (CI set, as .ci/run does), where that is an error.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	  if [ -n "$$CI" ]; then \
	    echo "error: Chromium is needed by the browser tests and could not be installed" \
	         "(try: apt-get install -y chromium)" >&2; exit 1; \
	  else \
	    echo "warning: Chromium could not be installed; the browser tests will be skipped" \
	         "(try: apt-get install -y chromium)" >&2; \
	  fi

pytest: $(STAMP) browser
	HYPOTHESIS_PROFILE=ci $(BIN)/pytest -q --durations=25

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .mypy_cache .ruff_cache .hypothesis build
