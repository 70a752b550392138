# gocached: see README.md. Every target works on a fresh Debian machine with Go.
GO      ?= go
BIN     ?= bin
PKGS    := ./...
# Each fuzz target runs for FUZZTIME in `make fuzz`.
FUZZTIME ?= 30s
# The daemon has no use for urfave/cli's man-page and Markdown generators:
# without them it maps 0.6 MB less of its binary (RSS at start-up).
export GOFLAGS += -tags=urfave_cli_no_docs

.PHONY: all build run test bench gobench fuzz lint clean image cluster example-image

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/gocached ./cmd/gocached
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/gocached-bench ./cmd/gocached-bench

# The daemon on memcached's built-in defaults: port 11211, 64 MB.
# memcached refuses to run as root without -u; so does gocached.
run: build
	$(BIN)/gocached $(if $(filter 0,$(shell id -u)),-u root) $(ARGS)

# Every test, with the race detector. The race detector sees only heap
# memory, so under it item pages stay on the heap (slab/arena.go): the
# store's tests run once more without it. Tests that need memcached or
# memccapable skip locally when they are missing and fail under CI=1.
test:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt needed"; exit 1; }
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(GO) test -count=1 ./slab

# Side by side with memcached (from PATH): a short matrix, about 4 minutes,
# writing tables, JSON and plots to bench/results/.
bench:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/gocached ./cmd/gocached
	$(GO) build -o $(BIN)/gocached-bench ./cmd/gocached-bench
	$(BIN)/gocached-bench compare --gocached $(BIN)/gocached --scenarios short --reps 5 --duration 1s --quiet --out bench/results
	$(BIN)/gocached-bench memory --gocached $(BIN)/gocached --items 200000 --size 100 --reps 1 --quiet --out bench/results
	$(BIN)/gocached-bench hitratio --gocached $(BIN)/gocached --evictions s3clock,lru,s3fifo,clock --reps 1 --ops 300000 --warmup 300000 --quiet --out bench/results
	$(BIN)/gocached-bench calcify --gocached $(BIN)/gocached --reps 1 --quiet --out bench/results
	$(BIN)/gocached-bench values --gocached $(BIN)/gocached --reps 3 --quiet --out bench/results
	$(BIN)/gocached-bench idle --gocached $(BIN)/gocached --conns 10000 --reps 1 --quiet --out bench/results

# FROM-scratch image: nothing is pulled, so the static binary is built first.
image:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o bin/gocached ./cmd/gocached
	docker build -t gocached:latest .

# NODES local nodes on 127.0.0.1:11211.. until Ctrl-C (ARGS: daemon flags, e.g. -m 64).
NODES ?= 3
cluster: build
	$(BIN)/gocached cluster up $(NODES) $(ARGS)

# The compose example's app image (examples/compose).
example-image: image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o examples/compose/app/bin/app ./examples/compose/app
	docker build -t gocached-example-app:latest examples/compose/app

# Go micro-benchmarks (allocations per request on the hot paths;
# BenchmarkRequestPath: each compare scenario over loopback, end to end).
gobench:
	$(GO) test -run '^$$' -bench . -benchmem ./protocol ./slab ./server

# Each parser's fuzzer in turn: text, meta, binary.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz '^FuzzMeta$$' -fuzztime $(FUZZTIME) ./protocol
	$(GO) test -run '^$$' -fuzz '^FuzzBinary$$' -fuzztime $(FUZZTIME) ./protocol

lint:
	$(GO) vet $(PKGS)
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }

clean:
	rm -rf $(BIN)
