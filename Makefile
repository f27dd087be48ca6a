# butler: build, test and run.
GO       ?= go
PREFIX   ?= /usr/local
DESTDIR  ?=
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION)
RUN_DIR  := $(CURDIR)/run
STATICCHECK ?= $(shell $(GO) env GOPATH)/bin/staticcheck
COMMIT_TIME ?= $(shell git log -1 --format=%ct 2>/dev/null || date +%s)
DEB_DIR  ?= bin
DEB_BUILD = $(DEB_DIR)/deb-build

.PHONY: all build man deb test fuzz crash run demo lint bench bench-fleet bench-table install deps clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/butler .

# The butler(1) man page as the binary prints it: built in, made from its command
# definitions by a test of commands (TestManPage), with the binary's version put in.
man: build
	bin/butler man > bin/butler.1

# The Debian package, $(DEB_DIR)/butler_VERSION_ARCH.deb: VERSION (git describe)
# made a Debian version, the files listed in scripts/deb/nfpm.yaml. The
# packager is scripts/deb, a Go module of its own (nfpm stays out of go.mod).
# The man page and completions come from the packaged binary itself.
deb:
	rm -rf $(DEB_BUILD)
	mkdir -p $(DEB_BUILD)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DEB_BUILD)/butler .
	$(DEB_BUILD)/butler man > $(DEB_BUILD)/butler.1
	gzip -9n $(DEB_BUILD)/butler.1
	$(DEB_BUILD)/butler completion bash > $(DEB_BUILD)/butler.bash
	$(DEB_BUILD)/butler completion zsh > $(DEB_BUILD)/_butler
	$(DEB_BUILD)/butler completion fish > $(DEB_BUILD)/butler.fish
	sed 's|/usr/local/bin/butler|/usr/bin/butler|' scripts/butler.service > $(DEB_BUILD)/butler.service
	sed 's|/usr/local/bin/butler|/usr/bin/butler|' scripts/butler.cron > $(DEB_BUILD)/butler.cron
	$(GO) -C scripts/deb build -o $(abspath $(DEB_BUILD))/mkdeb .
	$(DEB_BUILD)/mkdeb -config scripts/deb/nfpm.yaml -build $(DEB_BUILD) -out $(DEB_DIR) \
		-describe '$(VERSION)' -commit-time '$(COMMIT_TIME)' -arch "$$($(GO) env GOARCH)"

# Installs what the tests need (real Prometheus, Alertmanager, node_exporter, git)
# when missing, then vet, the race-enabled tests, the alert rules, and the demo
# as a smoke test of the built binary against a real Prometheus.
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	$(GO) -C scripts/deb vet ./...
	$(GO) -C scripts/deb test -count=1 ./...
	scripts/check-alerts.sh
	@$(MAKE) --no-print-directory fuzz FUZZTIME=15s
	@$(MAKE) --no-print-directory build >/dev/null
	@if command -v prometheus >/dev/null || [ -n "$$CI" ]; then \
		scripts/demo.sh >bin/demo.log 2>&1 && echo "demo: OK (log in bin/demo.log)" || { cat bin/demo.log; echo "demo: FAILED"; exit 1; }; \
	else echo "demo: skipped, prometheus is not installed (scripts/test-deps.sh as root installs it)"; fi

deps:
	scripts/test-deps.sh

# Runs every fuzz target for FUZZTIME, one after another, on one core. Go
# keeps what it learns in its cache; a failing input goes to the package's
# testdata/fuzz/NAME/, to be kept as a regression seed once fixed.
FUZZTIME ?= 1m
FUZZ_TARGETS := pipeline/config:FuzzParse pipeline/config:FuzzExpandEnv \
	pipeline/render:FuzzRender pipeline/render:FuzzValidate \
	pipeline/redact:FuzzURL pipeline/redact:FuzzScrub pipeline/state:FuzzParse
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz: $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -parallel 1 ./$$pkg; \
	done

# Kills butler sync with SIGKILL at random moments of N runs over files of
# several MiB, checking after each kill that nothing is torn (make test kills 30).
N ?= 1000
crash:
	BUTLER_CRASH_KILLS=$(N) $(GO) test -count=1 -run '^TestCrashSIGKILL$$' -v -timeout 6h .

# Syncs the bundled example (testdata/example) offline into ./run; run it twice:
# the first run writes, the second changes nothing.
run: build
	@mkdir -p $(RUN_DIR)
	BUTLER_RUN_DIR=$(RUN_DIR) bin/butler --config testdata/example/butler.toml sync
	@echo "--- $(RUN_DIR)/textfile/butler.prom"
	@cat $(RUN_DIR)/textfile/butler.prom

# Tells the story on a real Prometheus: good -> refused (LKG restored) -> no reload
# storm -> fixed, printing butler's metrics at each step; fails loudly if any step differs.
demo: build
	scripts/demo.sh

lint:
	scripts/test-deps.sh --lint
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(STATICCHECK) ./...
	$(GO) -C scripts/deb vet ./...
	cd scripts/deb && $(STATICCHECK) ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# 200 hosts x 20 files against one store, with and without conditional
# requests: the peak requests per second and the body bytes of a round.
bench-fleet:
	$(GO) test -run '^$$' -bench BenchmarkFleet -benchtime 3x ./pipeline/

# The rows of README's Performance table: no-change runs against the floor
# with the benchmark kit's run.sh (BENCH_RUN), then the change run of a
# 10 MiB file (BASE=an older binary to compare with).
BENCH_RUN ?= ../shared/bench/run.sh
bench-table: build
	@for row in "100 4096" "1000 4096" "10000 4096" "1 10485760" "100 1048576"; do \
		$(BENCH_RUN) bin/butler $$row 10 || exit 1; done
	$(GO) run ./scripts/benchchange -butler bin/butler $(if $(BASE),-base $(BASE))

install: build
	install -D -m 0755 bin/butler $(DESTDIR)$(PREFIX)/bin/butler
	install -d $(DESTDIR)/etc/systemd/system
	sed 's|/usr/local/bin/butler|$(PREFIX)/bin/butler|' scripts/butler.service > $(DESTDIR)/etc/systemd/system/butler.service
	chmod 0644 $(DESTDIR)/etc/systemd/system/butler.service
	install -D -m 0644 scripts/butler.timer $(DESTDIR)/etc/systemd/system/butler.timer
	install -d $(DESTDIR)$(PREFIX)/share/doc/butler
	sed 's|/usr/local/bin/butler|$(PREFIX)/bin/butler|' scripts/butler.cron > $(DESTDIR)$(PREFIX)/share/doc/butler/butler.cron
	install -D -m 0644 scripts/examples/butler.toml $(DESTDIR)$(PREFIX)/share/doc/butler/examples/butler.toml
	install -D -m 0644 scripts/examples/butler.env $(DESTDIR)$(PREFIX)/share/doc/butler/examples/butler.env
	install -D -m 0644 scripts/examples/nginx.toml $(DESTDIR)$(PREFIX)/share/doc/butler/examples/nginx.toml
	install -D -m 0755 scripts/nginx-reload $(DESTDIR)$(PREFIX)/libexec/butler/nginx-reload
	install -D -m 0644 scripts/butler-alerts.yml $(DESTDIR)$(PREFIX)/share/doc/butler/butler-alerts.yml

clean:
	rm -rf bin run
