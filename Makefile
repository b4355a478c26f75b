# corral build. Everything it builds goes to bin/ (ignored by git).
GO        ?= go
BIN       := bin
PLUGINS   := allocator/drf allocator/quota allocator/priority isolator/process isolator/cgroups isolator/runc executor/command
TOOLS_DIR ?= $(HOME)/.cache/corral-tools
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
PROTOS := sdk/proto/corral.proto \
	sdk/proto/executor.proto \
	pluginapi/base/proto/base.proto \
	pluginapi/allocator/proto/allocator.proto \
	pluginapi/isolator/proto/isolator.proto \
	pluginapi/executor/proto/executor.proto \
	core/master/agentproto/agent.proto \
	core/api/mesos/mesospb/mesos.proto \
	core/api/mesos/schedpb/scheduler.proto \
	core/api/mesos/executorpb/executor.proto \
	core/api/mesos/masterpb/master.proto

.PHONY: all build run test testdata-rootfs test-stress fuzz bench bench-alloc bench-swap bench-isolation bench-recovery bench-shim bench-ha bench-scale paper proto lint clean tools consul

all: build

build: $(BIN)/plugins/corral-shim
	@mkdir -p $(BIN)/plugins
	$(GO) build -o $(BIN)/corral ./cmd/corral
	@for p in $(PLUGINS); do \
		n=$$(echo $$p | tr / -); \
		echo "$(GO) build -o $(BIN)/plugins/corral-$$n ./plugins/$$p/cmd"; \
		$(GO) build -o $(BIN)/plugins/corral-$$n ./plugins/$$p/cmd || exit 1; \
	done
	@rm -f $(BIN)/plugins/corral-launcher
	@# The Go implementation of the shim alone (sdk/executor/shim/shimrun),
	@# outside plugins/ so that no executor picks it: the baseline of make
	@# bench-shim. (The executor binary's built-in shim mode is the same code.)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/corral-shim-go ./sdk/executor/shim/cmd
	@# The runc isolator's starter: the shim execs it in place of a task's
	@# command, and libcontainer re-executes it as the container's init.
	$(GO) build -o $(BIN)/plugins/corral-runc-start ./plugins/isolator/runc/start/cmd
	@# The example in-house allocator (sdk/examples/binpack/README.md).
	$(GO) build -o $(BIN)/plugins/corral-allocator-binpack ./sdk/examples/binpack/cmd
	@# The Mesos v1 framework example (imports nothing from corral).
	$(GO) build -o $(BIN)/mesosfw ./sdk/examples/mesosfw
	@# The sdk/scheduler framework example (sdk/examples/README.md).
	$(GO) build -o $(BIN)/ntasks ./sdk/examples/ntasks/cmd
	@# Example custom executors: corral's API (sdk/executor) and Mesos's v1 executor API.
	$(GO) build -o $(BIN)/customexec ./sdk/examples/customexec
	$(GO) build -o $(BIN)/mesosexec ./sdk/examples/mesosexec

# The per-task shim (sdk/executor/shim/cshim): the one process the command
# executor starts per task (it forks and execs the command itself, and is
# its parent for the task's lifetime). C, static, libc only: a Go binary's
# runtime start costs more CPU per task than a 1000-task launch can spend.
# Needs cc and a static libc (Debian: gcc libc6-dev). Without them the Go
# implementation of the same contract takes its place, with a warning: the
# cluster works, each task start costs about 3x the CPU, and the C shim's
# tests skip saying why. The stand-in is dated 1970, so that every build
# tries the compiler again.
CC ?= cc
CSHIM_SRC    := sdk/executor/shim/cshim/corral-shim.c
CSHIM_CFLAGS := -std=gnu11 -static -O2 -Wall -Wextra -Werror -D_GNU_SOURCE
$(BIN)/plugins/corral-shim: $(CSHIM_SRC) Makefile
	@mkdir -p $(@D)
	@if ! command -v $(CC) >/dev/null; then why="no C compiler ($(CC))"; \
	elif ! echo 'int main(void) { return 0; }' | $(CC) -static -x c -o $@.static-check - 2>/dev/null; then \
		why="$(CC) cannot link a static binary (no static libc)"; fi; rm -f $@.static-check; \
	if [ -n "$$why" ]; then \
		echo "make build: WARNING: $$why; using the Go shim as $@ (about 3x the CPU per task start)."; \
		echo "make build: for the C shim: apt-get install gcc libc6-dev, then make build"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o $@ ./sdk/executor/shim/cmd && touch -d @0 $@; \
	else \
		echo "$(CC) $(CSHIM_CFLAGS) -o $@ $(CSHIM_SRC)"; $(CC) $(CSHIM_CFLAGS) -o $@ $(CSHIM_SRC); \
	fi

run: build
	$(BIN)/corral dev -plugin-dir $(BIN)/plugins

test: build testdata-rootfs
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 30m ./...

# make testdata-rootfs      the runc tests' root filesystem, from Debian's busybox-static, cached
#                           outside the clone (~/.cache/corral/rootfs-busybox, or CORRAL_ROOTFS_CACHE)
testdata-rootfs:
	@testdata/rootfs/build-busybox.sh >/dev/null

# make fuzz                   every fuzz target (func FuzzX in *_test.go) for FUZZTIME each;
# make fuzz FUZZTIME=5m       crashers land in the package's testdata/fuzz/ and `make test` replays them
FUZZTIME ?= 30s
fuzz: build
	@set -e; for f in $$(git ls-files '*_test.go'); do \
		for t in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*testing\.F).*/\1/p' $$f); do \
			echo "== $$t ($$(dirname $$f))"; \
			CORRAL_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) ./$$(dirname $$f) 2>&1 | \
				grep -v '^fuzz: elapsed: [0-9]*s, execs: [0-9]* ([0-9]*/sec), new interesting: [0-9]* (total: [0-9]*)$$' || true; \
		done; \
	done

# make test-stress            the whole suite STRESS_RUNS times in a row with a CPU hog on every core;
#                             stops at the first failing run (a suite that holds under load)
STRESS_RUNS ?= 5
test-stress: build
	@set -e; hog=""; for i in $$(seq $$(nproc)); do (while :; do :; done) & hog="$$hog $$!"; done; \
		log=$$(mktemp); trap "kill $$hog 2>/dev/null; rm -f $$log" EXIT; \
		for run in $$(seq $(STRESS_RUNS)); do \
			echo "== run $$run of $(STRESS_RUNS), $$(nproc) busy loops"; \
			if ! CORRAL_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 40m ./... >$$log 2>&1; then \
				grep -v '^ok\|no test files' $$log | tail -200; \
				echo "== run $$run: failed tests and their assertions (log lines left out)"; \
				grep -E -- '--- FAIL|^FAIL|^panic:|_test\.go:[0-9]+: ' $$log | grep -v -E '\[(TRACE|DEBUG|INFO|WARN|ERROR)\]' | head -80; \
				echo "run $$run failed"; exit 1; \
			fi; \
		done; echo "all $(STRESS_RUNS) runs passed under load"

# make bench                                   every benchmark, one pass each
# make bench BENCH=ExecRoundTrip BENCHTIME=20x  one benchmark, 20 iterations
BENCH     ?= .
BENCHTIME ?= 1x
bench: build
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench '$(BENCH)' -benchtime $(BENCHTIME) -benchmem -count 1 ./...

# make bench-alloc                               the allocation table (issue 5 sizes, up to 50k agents)
# make bench-alloc MAX_AGENTS=10000              only the smaller sizes
# make bench-alloc ONLY='agents=10000/frameworks=1000/'   only the cases matching a regexp
MAX_AGENTS ?= 50000
ONLY ?=
bench-alloc: build
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_BENCH_ALLOC=1 CORRAL_BENCH_ALLOC_MAX_AGENTS=$(MAX_AGENTS) CORRAL_BENCH_ALLOC_ONLY='$(ONLY)' \
		$(GO) test -count 1 -timeout 60m -v -run 'TestReportAllocBench|TestReportMasterScale' ./plugins/allocator ./core/master

# make bench-recovery                            agent restart after kill -9 with 200 running tasks
# make bench-recovery RECOVERY_TASKS=500         another size
RECOVERY_TASKS ?= 200
bench-recovery: build
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_BENCH_RECOVERY=1 CORRAL_BENCH_RECOVERY_TASKS=$(RECOVERY_TASKS) \
		$(GO) test -count 1 -timeout 30m -v -run 'TestReportAgentRecovery' ./core/agent

# make bench-shim                                the per-task shim: launch cost (held at exec or not), RSS
bench-shim: build
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_BENCH_SHIM=1 $(GO) test -count 1 -timeout 20m -v -run 'TestReportShimCost' ./plugins/executor/command

# make bench-swap                                allocator hot-swap latency (20 swaps, dev cluster)
bench-swap: build
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_BENCH_SWAP=1 $(GO) test -count 1 -timeout 20m -v -run 'TestReportSwapLatency' ./cmd/corral

# make bench-isolation                 the issue 7 table: 1000 sleep tasks on one agent, cgroups isolator (root)
# make bench-isolation ISO_TASKS=200
# make bench-isolation ISO_ISOLATOR=runc ISO_TASKS=100 ISO_MEM=16   the same in runc containers (busybox rootfs)
# CORRAL_BENCH_ISOLATION_PPROF=DIR make bench-isolation  also CPU profiles of the agent and plugins, per phase
ISO_TASKS ?= 1000
ISO_ISOLATOR ?= cgroups
ISO_MEM ?= 4
bench-isolation: build testdata-rootfs
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_BENCH_ISOLATION=1 CORRAL_BENCH_ISOLATION_TASKS=$(ISO_TASKS) \
		CORRAL_BENCH_ISOLATION_ISOLATOR=$(ISO_ISOLATOR) CORRAL_BENCH_ISOLATION_MEM=$(ISO_MEM) \
		$(GO) test -count 1 -timeout 60m -v -run 'TestReportIsolationBench' ./core/agent | grep -v '^ *agent_test.go'

# make paper                         the Mesos and DRF papers reproduced by corral sim (a few minutes);
#                                    rewrites testdata/paper/ (tables in testdata/paper/README.md, plots)
paper: build
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_PAPER=1 $(GO) test -count 1 -timeout 60m -v -run 'TestPaper' ./core/sim

# make bench-ha                               leader failover with 3 masters, Consul and 1k emulated agents x 10 tasks
# make bench-ha HA_AGENTS=1000,10000
# CORRAL_BENCH_HA_CHECK_TTL=3s (masters' consul check_ttl), CORRAL_BENCH_HA_TASKS_PER_AGENT=1 (default 10)
# CORRAL_BENCH_HA_KILL=launched: kill as soon as every task runs, acks still in flight (default settled: all acked)
# CORRAL_BENCH_HA_PPROF=DIR: CPU profiles of each master's terms and of the agents after the kill (CORRAL_BENCH_HA_PPROF_SECONDS, 10)
HA_AGENTS ?= 1000
bench-ha: build consul
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_CONSUL_BIN=$(CONSUL_BIN) CORRAL_BENCH_HA=1 CORRAL_BENCH_HA_AGENTS=$(HA_AGENTS) \
		$(GO) test -count 1 -timeout 60m -v -run 'TestReportHAFailover' ./cmd/corral

# make bench-scale                            one master, 50,000 emulated agents (5 processes), 4 load frameworks and a
#                                             probe: placements/s, launch overhead of a 10 s task, master RSS/CPU, cycle time
# make bench-scale SCALE_AGENTS=5000,10000    other sizes; CORRAL_BENCH_SCALE_SECONDS (window, 30),
#   CORRAL_BENCH_SCALE_PROBES (40), CORRAL_BENCH_SCALE_PER_PROC (agents per emulator process, 10000),
#   CORRAL_BENCH_SCALE_PPROF=DIR (CPU profiles of master and emulators per phase into DIR),
#   CORRAL_BENCH_SCALE_LOGS=DIR (every process's stderr)
SCALE_AGENTS ?= 50000
bench-scale: build
	CORRAL_BIN_DIR=$(CURDIR)/$(BIN) CORRAL_BENCH_SCALE=1 CORRAL_BENCH_SCALE_AGENTS=$(SCALE_AGENTS) \
		$(GO) test -count 1 -timeout 90m -v -run 'TestReportScale' ./cmd/corral | grep -v 'agent disconnected'

# make consul    the Consul agent the HA tests run (v1.16.1, the last MPL-2.0
#                release), built from the Go module proxy into a cache outside
#                the clone; a binary already there is reused. Several minutes
#                the first time on 2 cores.
CONSUL_VERSION := 1.16.1
CONSUL_BIN     ?= $(HOME)/.cache/corral/consul-$(CONSUL_VERSION)/consul
consul:
	GO=$(GO) .ci/build-consul.sh $(CONSUL_BIN)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
		if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@# Imports point down: only core/ and cmd/ may import core/ (tests included).
	@bad=$$($(GO) list -f '{{.ImportPath}}{{range .Imports}} {{.}}{{end}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}' ./... | \
		awk '$$1 !~ /corral\/(core|cmd)(\/|$$)/ { for (i = 2; i <= NF; i++) if ($$i ~ /corral\/core(\/|$$)/) print "  " $$1 " imports " $$i }'); \
		if [ -n "$$bad" ]; then echo "only core/ and cmd/ may import core/:"; echo "$$bad"; exit 1; fi

tools:
	@mkdir -p $(TOOLS_DIR)/bin
	GOBIN=$(TOOLS_DIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(TOOLS_DIR)/bin $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	@command -v protoc >/dev/null || (apt-get update -qq && apt-get install -y -qq protobuf-compiler)

# protoc comes from Debian (protobuf-compiler); the Go generators are pinned above.
proto: tools
	PATH=$(TOOLS_DIR)/bin:$$PATH protoc -I . \
		--go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative,require_unimplemented_servers=false \
		$(PROTOS)

clean:
	rm -rf $(BIN)
