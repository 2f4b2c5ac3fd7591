# Two commands set up everything on a fresh machine: `make test` and `make demo`.
# Each creates .venv/ if missing, installs torch first (CPU wheel by TORCH_SPEC), then the package.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= -n 2

.PHONY: test demo lint typecheck bench-overhead bench-serving system-deps clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	touch $@

$(VENV)/.deps-all: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install -q -e ".[all]"
	touch $@

$(VENV)/.deps-demo: $(VENV)/.torch pyproject.toml
	$(PY) -m pip install -q -e ".[data,plots]"
	touch $@

# Debian's Fashion-MNIST, PostgreSQL (for the store's tests) and Chromium (the dashboard's browser test), when apt is usable; tests skip with a reason otherwise.
# wrk and hey: the native load generators of benchmarks/serving.py.
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  need=""; \
	  [ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || need="$$need dataset-fashion-mnist"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$$need postgresql"; \
	  command -v chromium >/dev/null 2>&1 || need="$$need chromium"; \
	  command -v wrk >/dev/null 2>&1 || need="$$need wrk"; \
	  command -v hey >/dev/null 2>&1 || need="$$need hey"; \
	  if [ -n "$$need" ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null) \
	    || echo "note: could not install$$need; dependent tests will skip"; fi; \
	fi

lint: $(VENV)/.deps-all
	$(VENV)/bin/ruff check src tests benchmarks

# mypy reads its settings (files, strictness, stub-less packages) from pyproject.toml
typecheck: $(VENV)/.deps-all
	$(VENV)/bin/mypy

test: $(VENV)/.deps-all system-deps lint typecheck
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

demo: $(VENV)/.deps-demo
	@[ -e /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || $(MAKE) -s system-deps
	$(VENV)/bin/lifelong demo --out runs/demo

bench-overhead: $(VENV)/.deps-all
	$(PY) benchmarks/overhead.py --out benchmarks/results/overhead.json

bench-serving: $(VENV)/.deps-all system-deps
	$(PY) benchmarks/serving.py --profile --out benchmarks/results/serving.json

clean:
	rm -rf $(VENV) runs build *.egg-info
