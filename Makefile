# cctvkit developer entry points. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned to the release this project is tested with; override for another platform, e.g.
# make setup TORCH="torch==2.9.1 torchvision==0.24.1" (aarch64 CPU builds).
TORCH ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= edge,trainer,export,export-litert,dev

.PHONY: setup demo test lint typecheck unit clean pi-check

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH) -e '.[$(EXTRAS)]'
	@# One OpenCV distribution only: two would overwrite each other's cv2 package.
	@n=$$($(BIN)/python -m pip list 2>/dev/null | grep -ciE '^opencv-(python|contrib-python)'); \
	  if [ "$$n" != "1" ]; then echo "expected exactly one OpenCV distribution, found $$n" >&2; exit 1; fi
	touch $@

demo: setup
	$(BIN)/trainer demo $(ARGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/lint-imports

typecheck: setup
	$(BIN)/mypy edge

unit: setup
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck unit

# Issue 16: edge/ and bench/ on an emulated Pi (arm64 Debian bookworm rootfs through qemu-user-static, as
# root), compared with x86. sudo make pi-check RUN=runs/demo [MODELS="a.tflite b.tflite"]; see the README.
PI_PY ?= $(abspath $(BIN))/python
pi-check:
	PY=$(PI_PY) bash benchmarks/pi_check.sh $(RUN) $(MODELS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
