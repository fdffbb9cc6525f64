# tundevfs. `make demo` mounts a device directory and shows `ls` cloning a
# tun; `make test` runs every check and test. Both work on a fresh machine.

GO      ?= go
BIN     := bin/tundevfs
GOFUSE  := .build/go-fuse/.gofuse-patched.sha256
GOBIN   := $(shell $(GO) env GOPATH)/bin
PKGS    := ./...
TESTFLAGS ?= -count=1 -timeout 30m

.PHONY: all build deps demo test lint bench bench-go fuzz stress clean deb man completions containers deb-check cover-driver

all: build

# The patched go-fuse copy that go.mod's replace points at.
$(GOFUSE): patches/go-fuse-v2.12.1-poll.patch patches/go-fuse-v2.12.1-uring.patch patches/go-fuse-v2.12.1-takeover.patch scripts/gofuse-patched.sh
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
	$(MAKE) cover-driver
	$(MAKE) deb-check

# The driver's tests as an ordinary user (nobody when run as root), with
# their coverage of driver, which must stay at least COVER_MIN (80) percent.
cover-driver: $(GOFUSE)
	GO=$(GO) scripts/cover-driver.sh

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

# The Debian package (nFPM, pinned here rather than as a go.mod tool: nFPM
# pulls in some hundred modules that the project's own build never needs).
# Version: VERSION, plus ~gitDATE.HASH unless HEAD is tagged vVERSION.
NFPM      := $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
DIST      := .build/dist
VERSION   := $(shell cat VERSION)
GITREV    := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
GITDATE   := $(shell git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null)
EPOCH     := $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
DEB_VERSION := $(if $(filter v$(VERSION),$(shell git describe --tags --exact-match 2>/dev/null)),$(VERSION),$(VERSION)~git$(GITDATE).$(GITREV))
DEB       := bin/tundevfs_$(DEB_VERSION)_amd64.deb
MAINT     := tundevfs maintainers <maintainers@users.noreply.r-seed-7d7212eb.example>

# Static, stripped, reproducible: what a package ships.
$(DIST)/tundevfs: $(GOFUSE) FORCE
	@mkdir -p $(DIST)
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false \
	  -ldflags '-s -w -buildid= -X main.version=$(DEB_VERSION)' -o $@ ./cmd/tundevfs

# Man pages and completions come from the command tree itself (the hidden
# `tundevfs gen-docs`), so they say what --help says.
man: $(DIST)/tundevfs
	rm -rf $(DIST)/man && SOURCE_DATE_EPOCH=$(EPOCH) $(DIST)/tundevfs gen-docs --man $(DIST)/man
	gzip -9n $(DIST)/man/*.8

completions: $(DIST)/tundevfs
	rm -rf $(DIST)/completions && $(DIST)/tundevfs gen-docs --completions $(DIST)/completions

# The container integration, printed by the binary itself so it never
# drifts from the code: the CDI spec of tundevfs.dev/tun (validated by the
# CDI library as it is printed) and the podman/CRI-O hooks.d file, both
# naming the installed /usr/bin/tundevfs and the default socket and
# per-netns mount.
containers: $(DIST)/tundevfs
	rm -rf $(DIST)/containers && mkdir -p $(DIST)/containers
	$(DIST)/tundevfs --socket /run/tundevfs/tundevfs.sock cdi --binary /usr/bin/tundevfs \
	  --netns-dev /run/tundevfs/netns-dev > $(DIST)/containers/tundevfs.dev-tun.json
	$(DIST)/tundevfs --socket /run/tundevfs/tundevfs.sock oci-hook --hooks-d --binary /usr/bin/tundevfs \
	  --netns-dev /run/tundevfs/netns-dev > $(DIST)/containers/tundevfs-hooks.json

$(DIST)/changelog.gz: FORCE
	@mkdir -p $(DIST)
	printf 'tundevfs (%s) unstable; urgency=medium\n\n  * Built from commit %s.\n\n -- %s  %s\n' \
	  '$(DEB_VERSION)' '$(GITREV)' '$(MAINT)' "$$(date -u -R -d @$(EPOCH))" | gzip -9n > $@

deb: man completions containers $(DIST)/changelog.gz
	@mkdir -p bin
	rm -f bin/tundevfs_*.deb
	TUNDEVFS_VERSION='$(DEB_VERSION)' SOURCE_DATE_EPOCH=$(EPOCH) \
	  GOFLAGS= $(NFPM) package --packager deb --config deploy/nfpm.yaml --target $(DEB)
	@echo "built $(DEB)"

# Install the package on this machine, exercise it, purge it (as root;
# skips without root unless TUNDEVFS_REQUIRE_PRIVILEGED=1).
deb-check: deb
	scripts/deb-check.sh $(DEB)

FORCE:

clean:
	rm -rf bin .build
