# Arca: the two README commands.
#   make run   build and start `arca serve` on embedded defaults (HTTPS, SQLite, local files)
#   make test  install/start what the tests need (PostgreSQL, MinIO, Trivy) and run every test
export CARGO_TARGET_DIR ?= $(HOME)/.cache/arca/target
CARGO ?= cargo
ARGS ?=

.PHONY: run test build bench clean-data fuzz

build:
	$(CARGO) build --locked -p arca-cli

# Trivy comes from scripts/tools.sh (built once from the Go module proxy) unless ARCA_TRIVY is set.
run: build
	ARCA_TRIVY=$${ARCA_TRIVY:-$$(scripts/tools.sh trivy)} $(CARGO_TARGET_DIR)/debug/arca serve $(ARGS)

test:
	scripts/test.sh

clean-data:
	rm -rf ./arca-data

# Benchmarks: each figure next to its baseline, measured in the same run.
bench:
	scripts/bench.sh

# The API fuzzed from its OpenAPI document (schemathesis, every check): the long run.
fuzz:
	FUZZ_CASES=5000 scripts/fuzz.sh
