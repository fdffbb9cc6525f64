# tundevfs. `make demo` mounts a device directory and shows `ls` cloning a
# tun; `make test` runs every check and test. Both work on a fresh machine.

GO      ?= go
BIN     := bin/tundevfs
GOFUSE  := .build/go-fuse/.gofuse-patched.sha256
GOBIN   := $(shell $(GO) env GOPATH)/bin
PKGS    := ./...
TESTFLAGS ?= -count=1 -timeout 30m

.PHONY: all build deps demo test lint bench bench-go fuzz stress clean

all: build

# The patched go-fuse copy that go.mod's replace points at.
$(GOFUSE): patches/go-fuse-v2.12.1-poll.patch scripts/gofuse-patched.sh
	scripts/gofuse-patched.sh

build: $(GOFUSE)
	$(GO) build -o $(BIN) ./cmd/tundevfs

deps:
	scripts/install-deps.sh

demo: deps build
	scripts/demo.sh $(BIN)

lint: $(GOFUSE)
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.build/*')); \
	  if [ -n "$$out" ]; then echo "gofmt wants to rewrite:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GOBIN)/staticcheck $(PKGS)

test: deps lint
	$(GO) test $(TESTFLAGS) $(PKGS)

# The benchmark suite's table (BENCH_QUICK=1: a smoke run in seconds).
bench: deps build
	GO=$(GO) scripts/bench.sh $(BIN)

# The Go benchmarks of the hot paths, for benchstat: BENCH selects, COUNT
# runs each.
BENCH ?= .
COUNT ?= 6
bench-go: deps $(GOFUSE)
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count $(COUNT) ./bench/

# Every Go fuzz target of the module, one after another, FUZZTIME each
# (default 5m); prints each target's executions, exits 1 on a finding.
FUZZTIME ?= 5m
fuzz: $(GOFUSE)
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# The mixed workload against a real daemon for STRESS_DURATION (default
# 10m), with a leak table every minute (as root). `make test` runs a 30 s
# version through -short.
STRESS_DURATION ?= 10m
stress: deps $(GOFUSE)
	STRESS_DURATION=$(STRESS_DURATION) $(GO) test -count=1 -timeout 0 -v -run '^TestStress$$' ./internal/stress/

clean:
	rm -rf bin .build
