# M/s — build the runtime, set up the compiler's environment, run tests.
#   make            .venv with the compiler installed, and build/libms*.a
#   make test       the whole test suite
#   make demo       compile examples/demo.ms and run it on local slaves
#   make examples/gcd-master examples/gcd-slave   link one program
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
BUILD  := build
RUNTIME_LIBS := $(BUILD)/libmsmaster.a $(BUILD)/libmsslave.a
MSC    := $(PY) -m compiler

.PHONY: all runtime venv test demo clean memcheck sanitize bench
.DELETE_ON_ERROR:

all: venv runtime

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

runtime:
	$(MAKE) -s -C runtime/c OUT=$(CURDIR)/$(BUILD)

$(RUNTIME_LIBS): runtime

# Link a program's two executables from its .ms file.
%-master %-slave: %.ms venv runtime
	$(MSC) $< -o $*

test: all
	$(PY) -m pytest -q tests

demo: all
	$(MSC) examples/demo.ms -o $(BUILD)/demo
	$(BUILD)/demo-master

clean:
	rm -rf $(BUILD)
	find . -name __pycache__ -prune -exec rm -rf {} +
