# udpd — run `make help` for the targets.

GO      ?= go
BUF     := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
FUZZTIME ?= 20s
SOAK    ?= 60s
BIN     ?= bin
TESTPKGS ?= ./...

# Version stamping: from git when there is a checkout, else empty, and the
# binaries fall back to what git archive wrote into
# cmd/internal/buildinfo/archive.txt, then to Go's build info.
VERSION  ?= $(shell git describe --tags --always --dirty --match 'v*' 2>/dev/null)
REVISION ?= $(shell r=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD -- 2>/dev/null || r=$$r-dirty; echo $$r; })
BUILDINFO := github.com/udpd/udpd/cmd/internal/buildinfo
LDFLAGS  := -X $(BUILDINFO).version=$(VERSION) -X $(BUILDINFO).revision=$(REVISION)

# make install: PREFIX=/usr/local by default; DESTDIR stages a package.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DATADIR ?= $(PREFIX)/share

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build udpd and udpctl into bin/ (BIN=dir), stamped with git describe
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/udpd ./cmd/udpctl

.PHONY: man
man: ## Generate the man pages (udpd.8, udpctl.1, udpctl-*.1) into bin/man
	$(GO) run -ldflags '$(LDFLAGS)' ./cmd/internal/mangen $(BIN)/man

.PHONY: install
install: build man ## Install binaries, completions, man pages and the systemd units (PREFIX=/usr/local, DESTDIR)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(UNITDIR) \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions $(DESTDIR)$(DATADIR)/zsh/site-functions \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	install -m 0755 $(BIN)/udpd $(BIN)/udpctl $(DESTDIR)$(BINDIR)/
	install -m 0644 $(BIN)/man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(BIN)/man/udpd.8 $(DESTDIR)$(MANDIR)/man8/
	$(BIN)/udpctl completion bash > $(DESTDIR)$(DATADIR)/bash-completion/completions/udpctl
	$(BIN)/udpctl completion zsh > $(DESTDIR)$(DATADIR)/zsh/site-functions/_udpctl
	$(BIN)/udpctl completion fish > $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/udpctl.fish
	sed 's|/usr/local/bin/|$(BINDIR)/|g' deploy/udpd.service > $(DESTDIR)$(UNITDIR)/udpd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/udpd.service
	install -m 0644 deploy/udpd.socket $(DESTDIR)$(UNITDIR)/udpd.socket

.PHONY: uninstall
uninstall: ## Remove what make install installed (same PREFIX and DESTDIR)
	rm -f $(DESTDIR)$(BINDIR)/udpd $(DESTDIR)$(BINDIR)/udpctl $(DESTDIR)$(MANDIR)/man8/udpd.8 \
	  $(DESTDIR)$(MANDIR)/man1/udpctl.1 $(DESTDIR)$(MANDIR)/man1/udpctl-*.1 $(DESTDIR)$(UNITDIR)/udpd.service \
	  $(DESTDIR)$(UNITDIR)/udpd.socket \
	  $(DESTDIR)$(DATADIR)/bash-completion/completions/udpctl $(DESTDIR)$(DATADIR)/zsh/site-functions/_udpctl \
	  $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/udpctl.fish

.PHONY: run
run: ## Run udpd with its defaults (UDP 127.0.0.1:12000, admin 127.0.0.1:50051); ARGS='--flag …'
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/udpd
	@# set -m runs udpd as its own job: Ctrl-C reaches udpd alone, not make
	@# (which would die of it), so make exits with udpd's status, 0.
	@set -m; $(BIN)/udpd $(ARGS)

.PHONY: test
test: ## Run every test with the race detector (the README's test command); says what runs every 20 s
	@echo "$(GO) test -race $(TESTPKGS)"
	@# go test prints a package's result only when every package before it
	@# is done; a heartbeat shows which test binaries are running meanwhile.
	@# The ok/FAIL lines are go test's own.
	@$(GO) test -race $(TESTPKGS) & gopid=$$!; \
	( start=$$(date +%s); while sleep 20; do \
	    running=$$(ps -o args= --ppid $$gopid 2>/dev/null | sed -n 's|^[^ ]*/\([^/ ]*\)\.test\( .*\)\{0,1\}$$|\1|p' | tr '\n' ' '); \
	    echo "make test: $$(( $$(date +%s) - start ))s, running: $${running:-(building)}"; \
	  done ) & hb=$$!; \
	wait $$gopid; rc=$$?; kill $$hb 2>/dev/null; exit $$rc

.PHONY: test-portable
test-portable: ## Run the listener tests with the portable worker (the one other systems use)
	$(GO) test -race -tags udpd_portable ./service/listener/
	$(GO) test -race -tags udpd_portable -run 'TestBusyWorkerDoesNotStallDaemon' ./service/admin/

CROSS ?= darwin/arm64 freebsd/amd64 windows/amd64

.PHONY: cross
cross: ## Build and vet everything for the other systems (CROSS='os/arch …')
	@set -e; for p in $(CROSS); do \
	  echo "GOOS=$${p%/*} GOARCH=$${p#*/} go build ./... && go vet ./..."; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build ./...; \
	  GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) vet ./...; \
	done

.PHONY: lint
lint: ## go vet, gofmt, buf lint and buf format
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(BUF) lint
	$(BUF) format -d --exit-code

.PHONY: generate
generate: ## Regenerate gen/ from proto/ (buf with pinned plugins from go.mod)
	$(BUF) generate

.PHONY: check-generate
check-generate: generate ## Fail if gen/ is stale
	git diff --exit-code -- gen/
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; exit 1; }

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 20s)
	$(GO) test -run '^$$' -fuzz '^FuzzAppend$$' -fuzztime $(FUZZTIME) ./service/uppercase/
	$(GO) test -run '^$$' -fuzz '^FuzzRequestValidation$$' -fuzztime $(FUZZTIME) ./service/admin/
	$(GO) test -run '^$$' -fuzz '^FuzzDatagram$$' -fuzztime $(FUZZTIME) ./service/listener/
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) ./service/config/

.PHONY: soak
soak: ## Soak: full-rate load while listeners start/stop/rebind, then check for leaks (SOAK=60s)
	UDPD_SOAK=$(SOAK) $(GO) test -race -count=1 -run '^TestSoak$$' -v ./service/admin/

.PHONY: fleet-test
fleet-test: ## Anycast fleet in network namespaces: 3 udpd hosts behind an ECMP router, one host stopped (root)
	UDPD_FLEET=1 $(GO) test -count=1 -run '^TestFleet$$' -v ./deploy/

.PHONY: k8s-validate
k8s-validate: ## Render deploy/kubernetes with kustomize and decode it strictly against the Kubernetes API types (no cluster)
	cd deploy/kubernetes/validate && $(GO) vet ./... && $(GO) test -count=1 -v ./...

.PHONY: bench
bench: bench-go ## Run the Go micro-benchmarks, then bench/compare.sh (udpd vs the C and naive Go servers)
	GO='$(GO)' bash bench/compare.sh

.PHONY: bench-go
bench-go: ## Run only the Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./service/...

IMAGE   ?= udpd:dev
CONTAINER_TOOL ?= $(shell command -v podman || command -v docker)

.PHONY: image
image: ## Build the container image IMAGE (default udpd:dev) from deploy/Containerfile, offline
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o bin/static/ ./cmd/udpd ./cmd/udpctl
	$(CONTAINER_TOOL) build --pull=never -f deploy/Containerfile -t $(IMAGE) bin/static

.PHONY: clean
clean: ## Remove build output
	rm -rf bin/
