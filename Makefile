# attnmed: `make study` runs the default study; `make test` runs every test.
# Each target sets itself up: .venv is created and the package installed (editable, with dev
# extras) only when missing or when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.attnmed-installed
OUT    ?= outputs
export MPLBACKEND := Agg
export PYTHONWARNINGS := ignore::DeprecationWarning
export JUPYTER_PLATFORM_DIRS := 1

.PHONY: study test test-all browser nbtest pytest export clean-nbs readme bench distclean lab

# (the stamp holds pyproject.toml's checksum: a tool that rewrites the file unchanged, as nbdev-export does, costs no reinstall)
$(STAMP): pyproject.toml
	@if [ -f $@ ] && [ "$$(cat $@)" = "$$(cksum < pyproject.toml)" ] && [ -x $(BIN)/python ]; then touch $@; else \
	  echo "attnmed: installing into $(VENV) (first run, or pyproject.toml changed) ..." && \
	  { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); } && \
	  { $(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true; } && \
	  { PYTHONWARNINGS=ignore $(BIN)/python -m pip install -q -e ".[dev,ray,slurm]" 2>&1 | grep -v '^WARNING: Location' || true; } && \
	  $(BIN)/python -c "import attnmed, fastai, papermill, timm, captum, nbdev" && \
	  cksum < pyproject.toml > $@; fi

## the default study on the embedded synthetic data, then its report: $(OUT)/default/report.html
study: $(STAMP)
	$(BIN)/attnmed-grid studies/default.yaml --out $(OUT)
	$(BIN)/attnmed-report $(OUT)/default

## the tests CI runs: every notebook (as nbdev-test runs it) and the pytest suite, sharing two workers; tests marked slow are skipped
test: browser pytest

## every test, the slow end-to-end runs included (the CI-size studies, the positive control, plugins, search, Ray; ~25 min on 2 cores)
test-all: browser $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal --durations=15 --slow tests

# the report is checked in headless Chromium; installed from Debian's packages where this user may (else that check is skipped)
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)); } \
	  || echo "chromium not installed: the report's browser check will be skipped"

nbtest: $(STAMP)
	$(BIN)/nbdev-test --n-workers 2 --timing

pytest: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist worksteal --durations=15 tests   # 2 workers, 1 thread each: CI's 2 cores (tests/test_notebooks.py runs the notebooks)

## JupyterLab on the project; notebooks in nbs/ are saved clean (tools/jupyter_server_config.py)
LAB_ARGS ?=
lab: $(STAMP)
	$(BIN)/jupyter lab --config=tools/jupyter_server_config.py $$([ "$$(id -u)" = 0 ] && echo --allow-root) $(LAB_ARGS)   # e.g. make lab LAB_ARGS="--no-browser --port 8890"

## developer helpers
## the library from the notebooks, then the README's tables from the registries (settings, formats, backbones, variants)
export: $(STAMP)
	$(BIN)/nbdev-export
	$(BIN)/python tools/render_readme.py --execute

clean-nbs: $(STAMP)
	$(BIN)/nbdev-clean

readme: $(STAMP)
	$(BIN)/python tools/render_readme.py --execute

bench: $(STAMP)
	for b in loader memory cell train data sequential carve; do OMP_NUM_THREADS=1 $(BIN)/python bench/$$b.py || exit 1; done

distclean:
	rm -rf $(VENV)
