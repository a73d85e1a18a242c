# Beaker — the two commands are `make run` and `make test`.
#
# Every target builds with the release profile only: the host binary,
# the tests and the rules component share one set of compiled dependencies.

SHELL := /bin/bash
CARGO ?= cargo
WASM_TARGET := wasm32-wasip2
RULES := target/$(WASM_TARGET)/release/beaker_rules.wasm
# Every rules component in the workspace: the default rules, the example,
# and the deliberately broken ones the tests load.
RULES_PACKAGES := -p beaker-rules -p beaker-rules-threshold -p beaker-test-rules-hostile -p beaker-test-rules-broken -p beaker-test-rules-incompatible
BEAKER := target/release/beaker
# Every test run selects the whole workspace, as `make host` does, so that
# they share one build of the dependencies (see `host` below).
NEXTEST := $(CARGO) nextest run --release --workspace
# The token `make run` gives its gateway, made once per checkout: an
# operator's, so that the local console may promote and roll back rules.
GATEWAY_TOKEN_FILE := .beaker/gateway-token
GATEWAY_URL := http://$(or $(BEAKER_GATEWAY_ADDR),127.0.0.1:8080)
export NATS_URL ?= nats://127.0.0.1:4222
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/beaker

.PHONY: help build rules rules-js rules-py host run test unit lint fmt services services-down clean-data
.PHONY: image dev profile bench deny check-deploy openapi asyncapi api-fuzz test-faults soak fuzz

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

build: host rules ## Build the host (target/release/beaker) and the rules components

# The whole workspace, not only `-p beaker`: cargo unifies dependency features
# over the packages it builds, so this compiles the dependencies exactly as
# `make test` does and the test run reuses them instead of building the
# heavy ones (wasmtime, sqlx, tokio) a second time.
host:
	$(CARGO) build --release --workspace

rules:
	@rustup target list --installed 2>/dev/null | grep -qx $(WASM_TARGET) || rustup target add $(WASM_TARGET)
	$(CARGO) build --release --target $(WASM_TARGET) $(RULES_PACKAGES)

rules-js: ## The default rules in JavaScript (examples/rules-js): target/rules-js/beaker_rules_js.wasm
	examples/rules-js/build.sh

rules-py: ## The default rules in Python (examples/rules-py): target/rules-py/beaker_rules_py.wasm
	examples/rules-py/build.sh

# The projects `beaker rules new` writes, outside the repository, built as
# their READMEs say (Rust offline, checked and deployed; JavaScript and
# Python installing their pinned tools afresh): part of `make test`, and
# here alone.
.PHONY: test-rules-new
test-rules-new: ## Rules projects from `beaker rules new` in Rust, JavaScript and Python: built and checked
	@scripts/services.sh test
	@$(MAKE) --no-print-directory build
	$(NEXTEST) -E 'test(/^rules_new::/)'

services: ## Install/start NATS (JetStream) and PostgreSQL if they are not already answering
	@scripts/services.sh up

services-down: ## Stop the services this project started under .beaker/
	@scripts/services.sh down

run: services build ## Start everything and run the service and its HTTP gateway (Ctrl-C stops it)
	@$(BEAKER) migrate
	@test -s $(GATEWAY_TOKEN_FILE) || (umask 077 && mkdir -p .beaker && \
		head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(GATEWAY_TOKEN_FILE))
	@printf '\n\033[1mBeaker is starting.\033[0m\n'
	@printf '  NATS:      %s  (subjects stock.add, stock.remove, stock.get)\n' "$(NATS_URL)"
	@printf '  Postgres:  %s\n' "$(DATABASE_URL)"
	@printf '  Rules:     %s\n' "$(RULES)"
	@printf '  HTTP:      %s  (token in %s)\n' "$(GATEWAY_URL)" "$(GATEWAY_TOKEN_FILE)"
	@printf '  Console:   %s/#token=%s\n' "$(GATEWAY_URL)" "$$(cat $(GATEWAY_TOKEN_FILE))"
	@printf 'Try, in another terminal:\n'
	@printf "  %s call stock.add '{\"product-sku\":\"widget-1\",\"quantity\":5}'\n" "$(BEAKER)"
	@printf "  curl -H \"Authorization: Bearer \$$(cat %s)\" -d '{\"product-sku\":\"widget-1\"}' %s/v1/nats/subjects/stock.get\n\n" "$(GATEWAY_TOKEN_FILE)" "$(GATEWAY_URL)"
	@exec $(BEAKER) serve --rules $(RULES) --gateway --gateway-operator-tokens-file $(GATEWAY_TOKEN_FILE)

unit: ## The unit tests of every crate: no services needed, well under a minute after the build
	@$(MAKE) --no-print-directory host
	$(NEXTEST) --lib --bins

test: ## The whole test suite (installs what is missing first)
	@scripts/services.sh test
	@scripts/browser-deps.sh
	@scripts/asyncapi-deps.sh
	@scripts/python-deps.sh
	@$(MAKE) --no-print-directory build rules-js
	cd examples/rules-js && node --test test/
	$(NEXTEST) --no-fail-fast

# The fault campaigns: FAULT_RUNS runs of each scenario with fresh random
# seeds (make test: 3), FAULT_SEED=0x... replays one run, FAULTS=NAME picks
# the scenarios whose test name contains NAME.
FAULT_RUNS ?= 3
FAULTS ?=
FAULT_FILTER := test(faults::)$(if $(FAULTS), and test($(FAULTS)))
test-faults: ## The fault campaigns, one after another with their tables (FAULT_RUNS, FAULT_SEED, FAULTS)
	@scripts/services.sh test
	@$(MAKE) --no-print-directory build
	@rm -rf target/test-output/campaigns
	FAULT_RUNS=$(FAULT_RUNS) $(NEXTEST) --no-capture -E '$(FAULT_FILTER)'

soak: ## The fault campaigns FAULT_RUNS times each (default 50), then the table of runs and failures per scenario
	@scripts/services.sh test
	@$(MAKE) --no-print-directory build
	@rm -rf target/test-output/campaigns
	@# A soak takes an hour: it runs a copy of the binary, so that editing
	@# and rebuilding meanwhile neither spoils it nor changes what it tests.
	@cp target/release/beaker target/soak-beaker
	@status=0; FAULT_RUNS=$(if $(filter command line environment,$(origin FAULT_RUNS)),$(FAULT_RUNS),50) \
		BEAKER_BIN=$(CURDIR)/target/soak-beaker \
		$(NEXTEST) --profile soak --no-capture -E '$(FAULT_FILTER)' || status=$$?; \
		cat target/test-output/campaigns/*.md 2>/dev/null; exit $$status

FUZZ_EXAMPLES ?= 100
api-fuzz: ## Fuzz the HTTP API with schemathesis (FUZZ_EXAMPLES cases per operation, default 100)
	@scripts/services.sh test
	@scripts/python-deps.sh
	@$(MAKE) --no-print-directory build
	BEAKER_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(NEXTEST) \
		--run-ignored only --no-capture -E 'test(schemathesis_finds_no_server_error)'

FUZZ_SECONDS ?= 60
fuzz: ## Fuzz request decoding and the rules boundary with cargo fuzz (FUZZ_SECONDS per target, default 60)
	@FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/fuzz.sh

openapi: host ## Regenerate docs/openapi.json from schemas/ (a test fails when it is stale)
	@$(BEAKER) openapi > docs/openapi.json.tmp && mv docs/openapi.json.tmp docs/openapi.json
	@echo "docs/openapi.json regenerated"

asyncapi: host ## Regenerate docs/asyncapi.json from schemas/ (a test fails when it is stale)
	@$(BEAKER) asyncapi > docs/asyncapi.json.tmp && mv docs/asyncapi.json.tmp docs/asyncapi.json
	@echo "docs/asyncapi.json regenerated"

lint: ## rustfmt and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean-data: services-down ## Stop project-local services and delete .beaker/
	rm -rf .beaker

# --- development environment and delivery ----------------------------------

image: ## Build the runtime image (needs a Docker engine): beaker:local
	docker build --target runtime -t beaker:local .

dev: ## Serve, rebuild and restart on every change (NATS and Postgres keep running)
	@scripts/dev.sh $(ARGS)

profile: ## CPU flamegraph of the host under load: target/profile/flamegraph.svg
	@scripts/profile.sh

bench: ## Measure the service against its baselines in one run; the table goes to BENCHMARKS.md
	@BENCH_COMMAND="make bench" scripts/bench.sh

deny: ## cargo deny: licences, bans, sources and advisories (DENY_CHECKS to choose)
	@command -v cargo-deny >/dev/null 2>&1 || $(CARGO) install --locked cargo-deny
	$(CARGO) deny check $(DENY_CHECKS)

check-deploy: ## Lint the Dockerfile, compose, devcontainer, CI workflow and scripts (no Docker engine needed)
	@scripts/check-deploy.sh
