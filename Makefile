# leadscore: every target installs what it needs into .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean tracking-server

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,server,dask]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/leadscore demo

# An MLflow tracking server on PostgreSQL (README: Past one machine); settings from
# LEADSCORE_TRACKING_* (backend store, artifacts destination, port).
tracking-server: $(STAMP)
	$(BIN)/leadscore tracking-server

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check leadscore features modeling forecast training serving review tests benchmarks
	$(BIN)/mypy leadscore features modeling forecast training serving review

clean:
	rm -rf $(VENV) models/mlflow.db models/artifacts
