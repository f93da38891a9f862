# switchd — see README.md. Every target that needs root-only kernel features
# (namespaces, routes) expects to run as root.

GO        ?= go
BIN       ?= bin/switchd
# The OpenConfig YANG that models/ is generated from; point it at your own
# checkout of openconfig/public (release/models, flattened) to regenerate.
YANG_DIR  ?= $(abspath ../shared/yang)
TOPOLOGY  ?=
TESTFLAGS ?=
BENCHFLAGS ?=

.PHONY: all build models demo demo-down rt-proto test bench scale lint clean deps tools package

all: build

build:
	$(GO) build -o $(BIN) ./switchd

models:
	YANG_DIR=$(YANG_DIR) $(GO) generate ./models/...

deps:
	bash .ci/deps

tools:
	bash .ci/tools

# Brings up the demo fabric (the default one with labelled workloads and
# examples/policy.yaml on every host) and shows it working: reachability,
# then what the workload policy allows (sim matrix), then a leaf's BGP
# sessions as its daemon reports them over gNMI (switchd show).
# UNNUMBERED=1 runs the spine-leaf links unnumbered (link-local only).
demo: deps build rt-proto
	./$(BIN) sim up --topology $(or $(TOPOLOGY),sim/topologies/policy.yaml) $(if $(UNNUMBERED),--unnumbered)
	./$(BIN) sim matrix
	./$(BIN) sim exec leaf1 -- ./$(BIN) show bgp summary
	./$(BIN) sim status
	@echo
	@echo "The fabric stays up. Look around with:  ./$(BIN) sim exec leaf1 -- ip route"
	@echo "Tear it down with:                      make demo-down   (or ./$(BIN) sim down)"

# Names switchd's route protocol (fib.Protocol) so `ip route` prints
# "proto switchd" instead of a bare number.
rt-proto:
	@if [ -d /etc/iproute2/rt_protos.d ] && [ ! -e /etc/iproute2/rt_protos.d/switchd.conf ]; then \
		echo "77	switchd" > /etc/iproute2/rt_protos.d/switchd.conf; fi

demo-down:
	./$(BIN) sim down

# The Debian package and the ONIE installer image, into dist/. A Debian
# version must start with a digit; without a tag it is 0.0~git<commit>.
DIST      ?= dist
VERSION   ?= $(shell v=$$(git describe --tags 2>/dev/null | sed 's/^v//'); echo $${v:-0.0~git$$(git rev-parse --short HEAD)})
package: build
	$(GO) run ./platform/packaging/mkpackage -binary $(BIN) -config examples/leaf.json -version '$(VERSION)' -out $(DIST)

# The whole suite. Tests make their own network namespaces (root needed)
# and remove them, also when they fail. One package at a time (-p 1):
# many tests assert real-time behaviour (BFD detection, pings every
# 10 ms across a restart, hold timers), and on two cores the simulator's
# package beside the BGP package's real peers starved both.
# The carried GoBGP's own tests (switchd's, for its patches) go with them.
test: deps tools
	$(GO) test -count=1 -p 1 -timeout 25m $(TESTFLAGS) ./... github.com/osrg/gobgp/v4/...

# The benchmarks of docs/PERFORMANCE.md, each side by side with its
# baseline in one run. BGPTOFIB_N=1000000 for the 1M-prefix run (~5 min).
BGPTOFIB_N ?= 100000
bench: deps build
	bash .ci/tools --bench
	$(GO) test -run '^$$' -bench 'Install1M|Failover1M' -benchtime 1x $(BENCHFLAGS) ./fib/
	$(GO) test -run '^$$' -bench EndpointSetup -benchtime 500x $(BENCHFLAGS) ./host/cni/
	$(GO) test -run '^$$' -bench WorkloadPropagation -benchtime 100x $(BENCHFLAGS) ./sim/bench/
	$(GO) test -run '^$$' -bench 'Check50kAggregates' -benchtime 3x $(BENCHFLAGS) ./switchd/config/
	$(GO) test -run '^$$' -bench 'ResolutionCommonCase' -count 5 $(BENCHFLAGS) ./fib/
	$(GO) test -run '^$$' -bench 'MembershipChange|EndpointChange' -benchtime 2000x -timeout 30m $(BENCHFLAGS) ./policy/
	$(GO) test -run '^$$' -bench Dataplane -benchtime 7x -timeout 30m $(BENCHFLAGS) ./policy/
	SWITCHD_BENCH_N=$(BGPTOFIB_N) $(GO) test -run '^$$' -bench BGPToFIB -benchtime 1x -count 3 -timeout 60m $(BENCHFLAGS) ./sim/bench/

# Issue 15's scale run (not part of make test, whose small variant is
# TestScalePrivileged at its default size): a generated fabric of HOSTS
# hosts with WORKLOADS workloads each, every FIB compared exactly, PAIRS
# sampled workload pairs pinged, CHURN workloads added and deleted, a leaf
# killed and restarted, a spine link failed; times and memory are logged
# (the SCALE line) for docs/PERFORMANCE.md. LEAVES and SPINES default to
# sizes derived from HOSTS; SETTLE is how many seconds a FIB may take to
# become exact once it holds every route. POLICY_GROUPS gives the fabric a
# default-deny workload policy with that many groups (0: none), and
# POLICY_PAIRS pairs it allows and as many it denies are probed on TCP.
HOSTS     ?= 50
WORKLOADS ?= 20
PAIRS     ?= 1000
CHURN     ?= 1000
LEAVES    ?= 0
SPINES    ?= 0
SETTLE    ?= 60
POLICY_GROUPS ?= 100
POLICY_PAIRS  ?= 200
scale: deps build
	SWITCHD_SIMTEST_BINARY=$(abspath $(BIN)) SWITCHD_SCALE_HOSTS=$(HOSTS) SWITCHD_SCALE_WORKLOADS=$(WORKLOADS) \
	SWITCHD_SCALE_PAIRS=$(PAIRS) SWITCHD_SCALE_CHURN=$(CHURN) SWITCHD_SCALE_LEAVES=$(LEAVES) SWITCHD_SCALE_SPINES=$(SPINES) \
	SWITCHD_SCALE_SETTLE=$(SETTLE) SWITCHD_SCALE_POLICY_GROUPS=$(POLICY_GROUPS) SWITCHD_SCALE_POLICY_PAIRS=$(POLICY_PAIRS) \
	$(GO) test -count=1 -run 'TestScalePrivileged$$' -v -timeout 180m $(TESTFLAGS) ./switchd/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	-[ -x $(BIN) ] && ./$(BIN) sim down
	rm -rf bin dist
