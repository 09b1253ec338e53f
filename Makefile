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

.PHONY: all system-deps runtime venv test demo clean memcheck sanitize bench
.DELETE_ON_ERROR:

all: venv runtime

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# The runtime needs OpenSSL's libcrypto headers; the machines we run on have
# them, and a fresh Debian one gets them here (as root) rather than failing.
system-deps:
	@echo '#include <openssl/hmac.h>' | $(CC) -E -x c - >/dev/null 2>&1 || \
	  { echo "installing libssl-dev (OpenSSL headers)"; \
	    apt-get update -qq && apt-get install -y -qq libssl-dev; }

runtime: system-deps
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

# The runtime built with AddressSanitizer and UndefinedBehaviorSanitizer
# into build/asan; the runtime, protocol and fault tests and the golden run
# tests against it (programs link it through MS_RUNTIME_DIR). Findings go to
# build/asan/logs; any there fails the target, even from a slave whose death
# a test survived. Leaks are memcheck's business.
ASAN_OUT := $(CURDIR)/$(BUILD)/asan
SANITIZE_ENV := MS_RUNTIME_DIR=$(ASAN_OUT) MS_SANITIZE=1 \
	ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=0:log_path=$(ASAN_OUT)/logs/asan \
	UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$(ASAN_OUT)/logs/ubsan

sanitize: venv
	$(MAKE) -s -C runtime/c OUT=$(ASAN_OUT) SANITIZE=1
	rm -rf $(ASAN_OUT)/logs && mkdir -p $(ASAN_OUT)/logs
	@rc=0; \
	$(SANITIZE_ENV) $(PY) -m pytest -q tests/runtime tests/faults tests/test_share.py tests/test_watch.py || rc=1; \
	$(SANITIZE_ENV) $(PY) -m pytest -q tests/test_golden.py -k test_run || rc=1; \
	if [ -n "$$(ls -A $(ASAN_OUT)/logs)" ]; then \
		cat $(ASAN_OUT)/logs/*; \
		echo "make sanitize: sanitizer findings above (in $(ASAN_OUT)/logs)"; \
		rc=1; \
	fi; \
	exit $$rc

# The golden run tests with every master and local slave under valgrind
# (tests/test_golden.py reads MS_MEMCHECK): a definite leak, an invalid
# access or a use of uninitialised memory fails the test.
memcheck: all
	MS_MEMCHECK=1 $(PY) -m pytest -q tests/test_golden.py -k test_run

# Benchmarks print ratios against C -O2 and a raw TCP floor measured in the
# same run; Ray and Dask are installed apart (best effort) to compare with.
bench: all
	test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	-.venv-bench/bin/python -m pip install -q "dask[distributed]" ray
	$(PY) -m tools.bench.run

clean:
	rm -rf $(BUILD)
	find . -name __pycache__ -prune -exec rm -rf {} +
