# The two commands of the README:
#   make demo   set up .venv with the pinned set and run the main job
#   make test   set up .venv with the pinned set, lint (ruff), run the test suite, then tests/smoke.py
#               in fresh virtualenvs for the other supported Pythons (make smoke-versions)
SUPPORTED := 3.10 3.11 3.12
comma := ,
# The first python$(1) that runs: on PATH, else pyenv's (a pyenv shim is on PATH for
# every installed version but only runs the active ones).
python_for = $(shell for p in "$$(command -v python$(1))" "$$(pyenv prefix $(1) 2>/dev/null)/bin/python$(1)"; do \
	"$$p" -c '' 2>/dev/null && { echo "$$p"; break; }; done)
PYTHON ?= $(or $(call python_for,3.11),$(shell command -v python3))
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# make smoke-versions: one fresh venv per version, override an interpreter with
# PYTHON310=/path/to/python3.10 (PYTHON311, PYTHON312).
SMOKE_VERSIONS ?= 3.10 3.12
SMOKE_DIR := .venv-smoke
SMOKE_TARGETS := $(addprefix smoke-,$(SUPPORTED))

.PHONY: install demo test test-fast smoke-versions $(SMOKE_TARGETS) clean

$(STAMP): setup.cfg pyproject.toml
	@v=$$($(PYTHON) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null); \
	case " $(SUPPORTED) " in *" $${v%.*} "*) ;; *) found=$${v:+Python $$v}; \
	echo "PYTHON=$(PYTHON) is $${found:-not a working Python}, but larq_tentacle needs Python 3.10, 3.11 or 3.12." \
		"Fix: PYTHON=/path/to/python3.11 make $(or $(MAKECMDGOALS),install) (or a python3.10 / python3.12)" >&2; exit 1;; esac
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) apps/demo.py --workdir=runs/demo

# After the suite, the smoke test on the supported Pythons other than .venv's own
# (--keep-going: every version reports, and any failure still fails `make test`).
# Two pytest workers, one test file each at a time (--dist=loadfile keeps a file's module
# fixtures in one process); TEST_WORKERS=0 runs the suite in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist=loadfile
	$(MAKE) --no-print-directory --keep-going smoke-versions SMOKE_VERSIONS="$$($(PY) -c 'import sys; \
		print(*[v for v in "$(SUPPORTED)".split() if v != "%d.%d" % sys.version_info[:2]])')"

test-fast: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -m "not slow"

smoke-versions: $(addprefix smoke-,$(SMOKE_VERSIONS))

# A fresh venv, a regular (not editable) install, and the smoke run from outside the
# source tree, so that the installed package is what is tested.
$(SMOKE_TARGETS): smoke-%:
	@py="$(or $(PYTHON$(subst .,,$*)),$(call python_for,$*))"; \
	if ! "$$py" -c 'import sys; assert sys.version_info[:2] == ($(subst .,$(comma),$*))' 2>/dev/null; then \
		echo "smoke $*: no working Python $* (tried: $${py:-python$* on PATH and in pyenv})." \
			"Fix: pyenv install $*, or PYTHON$(subst .,,$*)=/path/to/python$* make $@" >&2; exit 1; fi; \
	echo "== smoke $*: $$py -> $(SMOKE_DIR)/py$*"; \
	rm -rf $(SMOKE_DIR)/py$* build && \
	"$$py" -m venv $(SMOKE_DIR)/py$* && \
	$(SMOKE_DIR)/py$*/bin/python -m pip install --quiet --upgrade pip && \
	$(SMOKE_DIR)/py$*/bin/python -m pip install --quiet '.[test]' && \
	cd /tmp && "$(CURDIR)/$(SMOKE_DIR)/py$*/bin/python" "$(CURDIR)/tests/smoke.py" --installed

clean:
	rm -rf $(VENV) $(SMOKE_DIR) runs *.egg-info
