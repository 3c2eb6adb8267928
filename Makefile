# udpd — run `make help` for the targets.

GO      ?= go
BUF     := $(GO) run github.com/bufbuild/buf/cmd/buf@v1.75.0
FUZZTIME ?= 20s
SOAK    ?= 60s

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build udpd and udpctl into bin/
	$(GO) build -o bin/ ./cmd/...

.PHONY: run
run: ## Run udpd with its defaults (UDP 127.0.0.1:12000, admin 127.0.0.1:50051); ARGS='--flag …'
	$(GO) build -o bin/ ./cmd/udpd
	@# set -m runs udpd as its own job: Ctrl-C reaches udpd alone, not make
	@# (which would die of it), so make exits with udpd's status, 0.
	@set -m; bin/udpd $(ARGS)

.PHONY: test
test: ## Run every test with the race detector (the README's test command)
	$(GO) test -race ./...

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

.PHONY: soak
soak: ## Soak: full-rate load while listeners start/stop/rebind, then check for leaks (SOAK=60s)
	UDPD_SOAK=$(SOAK) $(GO) test -race -count=1 -run '^TestSoak$$' -v ./service/admin/

.PHONY: bench
bench: bench-go ## Run the Go micro-benchmarks, then bench/compare.sh (udpd vs the C and naive Go servers)
	GO='$(GO)' bash bench/compare.sh

.PHONY: bench-go
bench-go: ## Run only the Go micro-benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./service/...

.PHONY: clean
clean: ## Remove build output
	rm -rf bin/
