# The targets people type. CI runs .ci/run, which runs `make ci`'s steps.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
FUZZTIME    ?= 30s
BENCHTIME   ?= 400000x

.PHONY: all test race bench lint fuzz quickstart

all: lint race

# The README's test command.
test:
	go test ./...

race:
	go test -race ./...

# Ledger throughput against its dependencies' floors, in one run.
bench:
	go test -run XXX -bench 'Floor|Append' -benchtime $(BENCHTIME) ./ledger
	go test -run XXX -bench . ./ledger/raftbadger ./ledger/merkle

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: run gofmt -w on the files above'; exit 1; }
	go vet ./...
	go run $(STATICCHECK) ./...

# Each fuzz target for FUZZTIME.
fuzz:
	go test -run XXX -fuzz '^FuzzVerifyInclusion$$' -fuzztime $(FUZZTIME) ./ledger/merkle
	go test -run XXX -fuzz '^FuzzVerifyConsistency$$' -fuzztime $(FUZZTIME) ./ledger/merkle
	go test -run XXX -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./ledger/entry
	go test -run XXX -fuzz '^FuzzDecodeChunk$$' -fuzztime $(FUZZTIME) ./ledger
	go test -run XXX -fuzz '^FuzzDecodeCommand$$' -fuzztime $(FUZZTIME) ./ledger
	go test -run XXX -fuzz '^FuzzDecodeLog$$' -fuzztime $(FUZZTIME) ./ledger/raftbadger
	go test -run XXX -fuzz '^FuzzPublishRequest$$' -fuzztime $(FUZZTIME) ./coapp/internal/policy
	go test -run XXX -fuzz '^FuzzSchema$$' -fuzztime $(FUZZTIME) ./coapp/api
	go test -run XXX -fuzz '^FuzzDecoders$$' -fuzztime $(FUZZTIME) ./coapp/internal/format
	go test -run XXX -fuzz '^FuzzDecodeBatch$$' -fuzztime $(FUZZTIME) ./coapp/internal/format
	go test -run XXX -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./consent

quickstart:
	go run ./examples/quickstart
