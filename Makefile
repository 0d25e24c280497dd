# Thin targets over the project's own tools. `make run` and `make test` do all set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PROTO_SRC := $(wildcard protos/syncd_api/v1/*.proto)
CONFIG ?=
PROTOC = $(BIN)/python -m grpc_tools.protoc -I protos \
	--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc

.PHONY: all run test lint proto proto-check bench clean install dev

all: lint test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip==25.3"

# Runtime install: what `make run` needs.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $@

# Development install: tests, lint, code generation, benchmarks.
$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev,bench]"
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
dev: $(VENV)/.dev-installed

run: $(VENV)/.installed
	$(BIN)/syncd $(if $(CONFIG),--config $(CONFIG)) serve --seed-demo

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy server client tests bench

proto: $(VENV)/.dev-installed
	$(PROTOC) --python_out=protos --grpc_python_out=protos \
		--mypy_out=protos --mypy_grpc_out=protos $(PROTO_SRC)

# Regenerates into a scratch folder and fails when the committed code differs.
proto-check: $(VENV)/.dev-installed
	@rm -rf .proto-check && mkdir -p .proto-check
	$(PROTOC) --python_out=.proto-check --grpc_python_out=.proto-check \
		--mypy_out=.proto-check --mypy_grpc_out=.proto-check $(PROTO_SRC)
	@for f in $$(cd .proto-check && find . -type f); do \
		diff -u "protos/$$f" ".proto-check/$$f" || { echo "generated code drifted: run 'make proto' ($$f)"; rm -rf .proto-check; exit 1; }; \
	done; rm -rf .proto-check; echo "proto-check: generated code is current"

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench $(BENCH)

clean:
	rm -rf $(VENV) .proto-check .pytest_cache .mypy_cache .ruff_cache build dist
