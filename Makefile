# tundevfs. `make demo` mounts a device directory and shows `ls` cloning a
# tun; `make test` runs every check and test. Both work on a fresh machine.

GO      ?= go
BIN     := bin/tundevfs
GOFUSE  := .build/go-fuse/.gofuse-patched.sha256
GOBIN   := $(shell $(GO) env GOPATH)/bin
PKGS    := ./...
TESTFLAGS ?= -count=1 -timeout 30m

.PHONY: all build deps demo test lint bench bench-go clean

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

clean:
	rm -rf bin .build
