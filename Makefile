# hearth — `make run` starts a single-node cluster, `make test` runs the whole suite.
# Both install missing build prerequisites first (.ci/prereqs).

CARGO ?= cargo
DATA_DIR ?= ./hearth-data

.PHONY: run test check prereqs build release bench-log bench-cluster bench-blobs clean-data

prereqs:
	@.ci/prereqs

## Build (release) and start a single-node hearth on ./hearth-data.
run: prereqs
	$(CARGO) run --release --locked -- serve --data-dir $(DATA_DIR)

## The whole test suite, dev profile, no benchmarks.
test: prereqs
	$(CARGO) test --workspace --locked

## What CI gates on besides tests: formatting and clippy with warnings denied.
check: prereqs
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

build: prereqs
	$(CARGO) build --workspace --locked

release: prereqs
	$(CARGO) build --release --locked

## The event-log benchmark on the disk under ./bench-data (release build).
bench-log: release
	mkdir -p ./bench-data
	$(CARGO) run --release --locked -- bench log --dir ./bench-data

## The cluster benchmark: 3 nodes on loopback vs 1 node, data under ./bench-data (release build).
bench-cluster: release
	mkdir -p ./bench-data
	$(CARGO) run --release --locked -- bench cluster --dir ./bench-data

## The blob benchmark: a 4+3 node over HTTP on loopback, data under ./bench-data (release build).
bench-blobs: release
	mkdir -p ./bench-data
	$(CARGO) run --release --locked -- bench blobs --dir ./bench-data

clean-data:
	rm -rf $(DATA_DIR)
