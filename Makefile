# xapi-go: a XenAPI server in Go. `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
BIN       := bin
VAR       := var
# `make run`
RUN_LISTEN     ?= 127.0.0.1:8080
RUN_TLS_LISTEN ?= 127.0.0.1:8443
RUN_DATA       ?= $(VAR)/xapid
# `make pool`: hosts on 127.0.0.1..N:POOL_PORT, data under POOL_DATA/hostN
POOL_PORT  ?= 8080
POOL_HOSTS ?= 3
POOL_DATA  ?= $(VAR)/pool
# `make fuzz`: time per fuzz target
FUZZTIME  ?= 30s
# `make bench`: which benchmarks (-bench regexp), -benchtime, and where the raw output goes
BENCHTIME ?= 1s
BENCH     ?= .
BENCH_OUT ?= $(VAR)/bench.txt
# packages whose unit tests run under the race detector in `make test`
# (everything but the real-client tests, which run once against the binary)
UNIT_PKGS  = $(shell $(GO) list ./... | grep -v '/tests/')
# staticcheck: the one in PATH or GOPATH/bin, else `go run` of the pinned
# version (keep STATICCHECK_VERSION equal to staticcheck_version in .ci/run)
STATICCHECK_VERSION := v0.8.2
STATICCHECK ?= $(shell command -v staticcheck 2>/dev/null || { p="$$($(GO) env GOPATH)/bin/staticcheck"; [ -x "$$p" ] && echo "$$p"; } || echo "$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)")
# directories holding generated *.gen.go files
GEN_DIRS  := datamodel xapi

.PHONY: help build run pool pool-stop pool-status pool-test pool-soak test unit-test client-test generate check-generated bench api-coverage fuzz lint clean

help: ## list the targets
	@echo "xapi-go make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort -t: -k1,1 | \
		awk 'BEGIN {FS = ":.*## "} {name[NR] = $$1; text[NR] = $$2; if (length($$1) > w) w = length($$1)} \
			END {for (i = 1; i <= NR; i++) printf "  %-*s  %s\n", w, name[i], text[i]}'
	@echo
	@echo "Variables: RUN_LISTEN=$(RUN_LISTEN) RUN_TLS_LISTEN=$(RUN_TLS_LISTEN) RUN_DATA=$(RUN_DATA)"
	@echo "           POOL_PORT=$(POOL_PORT) POOL_HOSTS=$(POOL_HOSTS) POOL_DATA=$(POOL_DATA) FUZZTIME=$(FUZZTIME) BENCHTIME=$(BENCHTIME)"

build: ## build bin/xapid (the daemon) and bin/xapigen (the code generator)
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/xapid ./cmd/xapid
	$(GO) build -o $(BIN)/xapigen ./cmd/xapigen

run: build ## start one host on RUN_LISTEN (HTTPS on RUN_TLS_LISTEN), data under RUN_DATA (values below)
	@mkdir -p $(RUN_DATA)
	@pw="$(abspath $(RUN_DATA))/root-password"; \
	echo "== xapid: http://$(RUN_LISTEN)/  https://$(RUN_TLS_LISTEN)/ (self-signed)  data: $(RUN_DATA)"; \
	if [ -n "$${XAPI_ROOT_PASSWORD:-}" ]; then \
		echo "== root password: the value of \$$XAPI_ROOT_PASSWORD"; \
		pyexpr="os.environ['XAPI_ROOT_PASSWORD']"; jsexpr="process.env.XAPI_ROOT_PASSWORD"; \
	else \
		echo "== root password: in $$pw (generated on first start; set XAPI_ROOT_PASSWORD to choose one)"; \
		pyexpr="open('$$pw').read().strip()"; jsexpr="fs.readFileSync('$$pw', 'utf8').trim()"; \
	fi; \
	echo "== connect with XenAPI.py (apt-get install python3-os-xenapi):"; \
	echo "   /usr/bin/python3 -c \"import os; from os_xenapi.client import XenAPI; s = XenAPI.Session('http://$(RUN_LISTEN)'); s.xenapi.login_with_password('root', $$pyexpr); print(s.xenapi.pool.get_all_records())\""; \
	echo "== connect with npm xen-api (npm ci --prefix tests/clients):"; \
	echo "   (cd tests/clients && node --input-type=module -e \"import fs from 'node:fs'; import { createClient } from 'xen-api'; const x = createClient({ url: 'http://$(RUN_LISTEN)', auth: { user: 'root', password: $$jsexpr }, watchEvents: false }); await x.connect(); console.log(await x.call('pool.get_all_records')); await x.disconnect(); process.exit(0)\")"; \
	echo "== stop with Ctrl-C"
	exec $(BIN)/xapid --data-dir $(RUN_DATA) --listen $(RUN_LISTEN) --tls-listen $(RUN_TLS_LISTEN)

pool: build ## start a 3-host pool on 127.0.0.1-3:8080 in the background, data under ./var/pool/ (POOL_PORT, POOL_HOSTS, POOL_DATA)
	XAPID_BIN=$(BIN)/xapid POOL_PORT=$(POOL_PORT) POOL_HOSTS=$(POOL_HOSTS) POOL_DATA=$(POOL_DATA) scripts/pool.sh start

pool-stop: ## stop the pool started by `make pool` (its data is kept)
	POOL_PORT=$(POOL_PORT) POOL_HOSTS=$(POOL_HOSTS) POOL_DATA=$(POOL_DATA) scripts/pool.sh stop

pool-status: ## which hosts of `make pool` run
	POOL_PORT=$(POOL_PORT) POOL_HOSTS=$(POOL_HOSTS) POOL_DATA=$(POOL_DATA) scripts/pool.sh status

pool-test: build ## multi-process pool tests (kill -9 of the master, linearizability) against bin/xapid
	XAPID_BIN="$(CURDIR)/$(BIN)/xapid" $(GO) test -count=1 -timeout 10m -v ./tests/pool/...

pool-soak: build ## the long pool tests: 5 hosts, 30+ kill -9 of the master (XAPI_POOL_SOAK=1)
	XAPI_POOL_SOAK=1 XAPID_BIN="$(CURDIR)/$(BIN)/xapid" $(GO) test -count=1 -timeout 60m -v -run 'TestPool' ./tests/pool/...

test: build ## gofmt, go vet, staticcheck, unit tests with -race, generated-code check, real-client tests, multi-process pool tests
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory check-generated
	$(MAKE) --no-print-directory unit-test
	$(MAKE) --no-print-directory client-test
	$(MAKE) --no-print-directory pool-test

unit-test: ## unit tests of every package under the race detector
	$(GO) test -race -timeout 12m $(UNIT_PKGS)

client-test: build ## XenAPI.py and npm xen-api against bin/xapid (skips if not installed unless XAPI_CLIENT_TESTS_REQUIRED=1)
	XAPID_BIN="$(CURDIR)/$(BIN)/xapid" $(GO) test -count=1 -timeout 10m -v ./tests/clients/...

generate: ## regenerate datamodel/*.gen.go and xapi/*.gen.go from the schema
	$(GO) run ./cmd/xapigen

check-generated: ## fail if `make generate` would change any *.gen.go file
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(GO) run ./cmd/xapigen -root "$$tmp"; \
	stale=0; \
	for d in $(GEN_DIRS); do \
		for f in $$d/*.gen.go; do \
			[ -e "$$f" ] || continue; \
			if [ ! -e "$$tmp/$$f" ]; then echo "stale: $$f is no longer generated"; stale=1; \
			elif ! cmp -s "$$f" "$$tmp/$$f"; then echo "stale: $$f differs from the generator's output"; \
				diff -u "$$f" "$$tmp/$$f" | head -20; stale=1; fi; \
		done; \
	done; \
	for f in $$(cd "$$tmp" && find . -name '*.gen.go' | sed 's|^\./||'); do \
		[ -e "$$f" ] || { echo "missing: $$f would be created by the generator"; stale=1; }; \
	done; \
	if [ $$stale -ne 0 ]; then echo "generated code is stale: run 'make generate' and commit the result"; exit 1; fi; \
	echo "generated code is up to date"

bench: ## run every benchmark once and print a table (raw output in var/bench.txt)
	@mkdir -p $(VAR)
	$(GO) test -run='^$$' -bench='$(BENCH)' -benchmem -benchtime=$(BENCHTIME) $$($(GO) list ./... | grep -v '/tests/') | tee $(BENCH_OUT)
	@echo
	@awk '/^pkg: / {pkg=$$2; sub(/^github.com\/xapi-go\/xapi-go\//, "", pkg)} \
		/^Benchmark/ { ns=""; b=""; a=""; x=""; \
			for (i=3; i<NF; i+=2) { u=$$(i+1); \
				if (u=="ns/op") ns=$$i; else if (u=="B/op") b=$$i; else if (u=="allocs/op") a=$$i; \
				else x=x (x=="" ? "" : ", ") $$i " " u; } \
			rows[++n]=sprintf("| %-16s | %-44s | %14s | %12s | %10s | %s |", pkg, $$1, ns, b, a, x) } \
		END { printf "| %-16s | %-44s | %14s | %12s | %10s | %s |\n", "package", "benchmark", "ns/op", "B/op", "allocs/op", "other metrics"; \
			printf "|%s|%s|%s|%s|%s|%s|\n", "------------------", "----------------------------------------------", "----------------", "--------------", "------------", "---"; \
			for (i=1; i<=n; i++) print rows[i] }' $(BENCH_OUT)

api-coverage: ## report which XenAPI messages are implemented (cmd/apicoverage)
	$(GO) run ./cmd/apicoverage

fuzz: ## run every Fuzz target for FUZZTIME each (default 30s); a failing input lands in testdata/fuzz
	@targets=$$(grep -r --include='*_test.go' -l '^func Fuzz' . | grep -v node_modules | sort); \
	[ -n "$$targets" ] || { echo "no fuzz targets"; exit 1; }; \
	failed=""; \
	for file in $$targets; do \
		pkg=./$$(dirname $${file#./}); \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$file"); do \
			echo "== $$pkg $$fn ($(FUZZTIME))"; \
			$(GO) test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) "$$pkg" || failed="$$failed $$pkg:$$fn"; \
		done; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz failures:$$failed"; exit 1; fi; \
	echo "all fuzz targets passed"

lint: ## gofmt -l, go vet, staticcheck
	@files=$$(find . -name '*.go' -not -path './tests/clients/node_modules/*' -not -path './var/*' | xargs gofmt -l); \
	if [ -n "$$files" ]; then echo "gofmt would change:"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...

clean: ## remove bin/ (var/ with the run data is kept)
	rm -rf $(BIN)

# `make pool-election-soak`: how long the write load runs
POOL_ELECTION_SOAK ?= 10m
# `make pool-write-bench`: -benchtime of the pool and etcd write benchmarks
POOL_WRITE_BENCHTIME ?= 20000x

.PHONY: pool-election-soak pool-write-bench
pool-election-soak: build ## 3 hosts under write load on a busy machine for POOL_ELECTION_SOAK (10m): fail on any leader election
	XAPI_POOL_ELECTION_SOAK=$(POOL_ELECTION_SOAK) XAPID_BIN="$(CURDIR)/$(BIN)/xapid" $(GO) test -count=1 -timeout 0 -v -run '^TestElectionStability$$' ./tests/pool/

pool-write-bench: build ## write latency/throughput through a 3-host pool's master, event latency via a member, and the etcd/store comparison
	XAPID_BIN="$(CURDIR)/$(BIN)/xapid" $(GO) test -count=1 -timeout 30m -run '^$$' -bench 'PoolWrite' -benchtime=$(POOL_WRITE_BENCHTIME) ./tests/pool/
	XAPID_BIN="$(CURDIR)/$(BIN)/xapid" $(GO) test -count=1 -timeout 30m -run '^$$' -bench 'PoolEventLatency' -benchtime=3000x ./tests/pool/
	$(GO) test -count=1 -run '^$$' -bench 'Etcd3Write' -benchtime=$(POOL_WRITE_BENCHTIME) ./bench/
	$(GO) test -count=1 -run '^$$' -bench 'ClusterWrite' -benchtime=$(POOL_WRITE_BENCHTIME) ./store/
	$(GO) test -count=1 -run '^$$' -bench 'FollowerApplyLag' ./store/
