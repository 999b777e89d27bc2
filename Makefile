# Arca: the two README commands.
#   make run   build the web app and the server, start `arca serve` on embedded defaults
#              (HTTPS on 127.0.0.1:8443, SQLite, encrypted local files, ./arca-data)
#   make test  install/start what the tests need (PostgreSQL, MinIO, Trivy, …) and run every test
export CARGO_TARGET_DIR ?= $(HOME)/.cache/arca/target
CARGO ?= cargo
ARGS ?=

.PHONY: run test build web bench fuzz lab clean-data

# The same build as `make test` (every binary of the workspace, one feature set), so that
# `make run` after `make test` starts without compiling.
build:
	$(CARGO) build --workspace --bins --locked

# npm ci and vite build, each skipped when nothing changed (scripts/web.sh).
web:
	scripts/web.sh build

# Trivy: $ARCA_TRIVY, else a `trivy` on PATH at the supported version, else built once
# from the Go module proxy (scripts/tools.sh, cached in ~/.cache/arca/tools).
run: build web
	ARCA_TRIVY=$${ARCA_TRIVY:-$$(scripts/tools.sh trivy --prefer-path)} \
	  $(CARGO_TARGET_DIR)/debug/arca serve --web-dir frontend/dist $(ARGS)

test:
	scripts/test.sh

clean-data:
	rm -rf ./arca-data

# Benchmarks: each figure next to its baseline, measured in the same run.
bench:
	scripts/bench.sh

# The API fuzzed from its OpenAPI document (schemathesis, every check): the long run.
# FUZZ_ACCEPTANCE=1 also requires every schema-valid request to be accepted (a report: Arca
# refuses some for reasons no schema states; see scripts/fuzz.sh).
fuzz:
	FUZZ_CASES=$${FUZZ_CASES:-5000} scripts/fuzz.sh

# The lab cluster alone (part of `make test`): a real Kubernetes + Knative on this machine,
# Arca deployed by kind-setup.sh --existing-cluster, the journey checked (tools/lab).
lab: build
	tools/lab/test.sh
