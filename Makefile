# Two entry points: `make train` (the main job) and `make test`.
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Use the datasets folder beside the checkout when there is one (no download needed).
export DLSCRATCH_DATA ?= $(abspath $(wildcard ../shared/datasets))

.PHONY: install train test lint bench clean

$(BIN)/dlscratch: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/dlscratch

train: install
	$(BIN)/dlscratch train $(ARGS)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(ARGS)

bench: install
	$(BIN)/dlscratch bench $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
