# The two commands of the README. Everything else is a helper of these.
SHELL := /bin/bash
CARGO ?= cargo
BERTH_ROOT ?= /var/lib/berth

# Debian packages the test suite drives as real peers and fixtures.
TEST_PACKAGES := busybox-static skopeo umoci docker-registry podman runc etcd-server etcd-client \
	libseccomp-dev pkg-config protobuf-compiler libprotobuf-dev containernetworking-plugins iproute2 iptables nftables strace
RUN_PACKAGES := libseccomp-dev pkg-config protobuf-compiler libprotobuf-dev containernetworking-plugins iproute2 iptables nftables
# Debian packages the benchmarks in bench/ build berth with (protoc and the well-known .proto files,
# libseccomp), run as peers (podman, runc, etcd, dnsmasq) or use to build fixtures and measure
# (skopeo, time, a loop ext4, strace for bench/image/phases.sh). dnsmasq-base is the dnsmasq
# binary without the `dnsmasq` package's system service (which would take port 53).
BENCH_PACKAGES := protobuf-compiler libprotobuf-dev libseccomp-dev pkg-config busybox-static skopeo podman runc time python3 e2fsprogs util-linux strace etcd-server etcd-client \
	containernetworking-plugins iproute2 iptables nftables dnsmasq-base

.PHONY: run test deps-run deps-test deps-bench build lint unit bench

run: deps-run
	$(CARGO) build --release --bin berth
	./target/release/berth --root $(BERTH_ROOT) daemon

test: deps-test lint
	./scripts/test.sh

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

deps-run:
	@./scripts/apt-ensure.sh $(RUN_PACKAGES)

deps-test:
	@./scripts/apt-ensure.sh $(TEST_PACKAGES)

deps-bench:
	@./scripts/apt-ensure.sh $(BENCH_PACKAGES)

bench: deps-bench
	$(CARGO) build --release --bin berth
	./bench/run.sh
