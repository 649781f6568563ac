# Fusion — top-level build.  `make run` and `make test` are the two
# commands a newcomer needs; both install what is missing first.
#
# Layout of build/:
#   build/fusion            release binary (UI embedded)
#   build/obj/...           release objects
#   build/asan/...          ASan+UBSan objects and the unit-test binary
#   build/gen/webui.c       the built web UI as C arrays
#   build/tools/embed       generator for build/gen/webui.c

VERSION    := 0.1.0
GIT_REV    := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
BUILD      := build
CC         ?= cc
PKGS       := libevent libevent_pthreads jansson sqlite3 libsodium libcurl liblz4

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN       := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
              -Wno-unused-parameter -Wformat=2 -Wvla -Werror=implicit-function-declaration
CPPFLAGS   := -D_GNU_SOURCE -Isrc -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP
CFLAGS     ?= -O2 -g
CFLAGS     += -std=c17 $(WARN) -fno-strict-aliasing
LDLIBS     := $(PKG_LIBS) -lpthread -lm
# The release binary allocates with mimalloc, linked first so that its
# malloc/free serve the libraries too (docs/ARCHITECTURE.md, "Memory").
# The sanitizer and TSan builds keep their own allocators.
REL_CPPFLAGS := -DFUSION_MIMALLOC
REL_LDLIBS := -lmimalloc $(LDLIBS)
SAN        := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

SRCS       := $(shell find src -name '*.c' | sort)
LIB_SRCS   := $(filter-out src/main.c,$(SRCS))
OBJS       := $(SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/$(BUILD)/gen/webui.o
ASAN_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/asan/%.o) $(BUILD)/asan/$(BUILD)/gen/webui.o
UNIT_SRCS  := $(shell find tests/unit -name '*.c' 2>/dev/null | sort)
UNIT_OBJS  := $(UNIT_SRCS:%.c=$(BUILD)/asan/%.o)
TOOL_BINS  := $(patsubst tests/tools/%.c,$(BUILD)/asan/tools/%,$(wildcard tests/tools/*.c))

WEB_SRCS   := $(shell find web -type f -not -path 'web/dist/*' 2>/dev/null) package.json package-lock.json
NPM_STAMP  := node_modules/.package-lock.json

.PHONY: all run build test deps lint format clean bench unit e2e ui _build _test web

all: build

# ---- entry points -------------------------------------------------------

run: deps
	@$(MAKE) --no-print-directory _build
	./$(BUILD)/fusion

build: deps
	@$(MAKE) --no-print-directory _build

test: deps
	@$(MAKE) --no-print-directory _test

deps:
	@scripts/deps.sh

# Fusion against a fast fake upstream, direct and through nginx for
# reference, in one run; rewrites the results in docs/BENCHMARKS.md.
bench: deps
	@BENCH_COMMAND='make bench' scripts/bench.sh

BENCH_TOOL_CFLAGS = -std=c17 -O2 -g $(WARN) -D_GNU_SOURCE

$(BUILD)/tools/fast_upstream: tools/fast_upstream.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_TOOL_CFLAGS) -o $@ $< $(shell pkg-config --cflags --libs libevent libevent_pthreads) -lpthread

$(BUILD)/tools/slow_streams: tools/slow_streams.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_TOOL_CFLAGS) -o $@ $<

_build: $(BUILD)/fusion

_test: $(BUILD)/fusion $(BUILD)/asan/fusion $(BUILD)/asan/unit_tests $(TOOL_BINS)
	@$(MAKE) --no-print-directory unit e2e ui

unit: $(BUILD)/asan/unit_tests $(BUILD)/tsan/snapshot_concurrency $(BUILD)/tsan/logwriter
	scripts/run-unit.sh $(BUILD)/asan/unit_tests
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(BUILD)/tsan/snapshot_concurrency
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 $(BUILD)/tsan/logwriter

# The cross-thread parts once more under ThreadSanitizer: the snapshot's
# publication and the log writer's queue.  Criterion cannot run under
# TSan, so these test files carry a small runner of their own.
TSAN_BASE := $(shell find src/util src/store src/auth -name '*.c' | sort) src/settings.c
TSAN_HDRS := $(wildcard tests/unit/*.h tests/unit/gateway/*.h src/*/*.h src/*.h)
TSAN_CC = $(CC) -std=c17 -D_GNU_SOURCE -Isrc -Itests/unit -I$(BUILD)/gen $(PKG_CFLAGS) -O1 -g -fsanitize=thread

$(BUILD)/tsan/snapshot_concurrency: tests/unit/gateway/test_snapshot_concurrency.c src/gateway/snapshot.c $(TSAN_BASE) $(TSAN_HDRS) | $(BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	$(TSAN_CC) -DSNAPSHOT_TEST_NO_CRITERION -o $@ $(TSAN_BASE) src/gateway/snapshot.c $< $(LDLIBS)

$(BUILD)/tsan/logwriter: tests/unit/gateway/test_logwriter.c src/gateway/logwriter.c $(TSAN_BASE) $(TSAN_HDRS) | $(BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	$(TSAN_CC) -DLOGWRITER_TEST_NO_CRITERION -o $@ $(TSAN_BASE) src/gateway/logwriter.c $< $(LDLIBS)

# End-to-end tests drive the sanitized binary, so a memory error or leak
# in the server fails them (it exits non-zero and the tests check for 0).
e2e: $(BUILD)/asan/fusion $(BUILD)/fusion $(TOOL_BINS)
	FUSION_BIN=$(abspath $(BUILD)/asan/fusion) FUSION_RELEASE_BIN=$(abspath $(BUILD)/fusion) \
		FUSION_TOOLS=$(abspath $(BUILD)/asan/tools) \
		ASAN_OPTIONS=detect_leaks=1 \
		node --test --test-concurrency=2 tests/e2e/

ui: $(BUILD)/fusion
	FUSION_BIN=$(abspath $(BUILD)/fusion) node --test --test-concurrency=1 tests/ui/

# ---- release binary -----------------------------------------------------

$(BUILD)/fusion: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(REL_LDLIBS)

$(BUILD)/obj/%.o: %.c | $(BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(REL_CPPFLAGS) $(CFLAGS) -c -o $@ $<

# ---- version stamp: rewritten only when the version or revision changes,
# so a new commit rebuilds just the files that print it.

$(BUILD)/gen/version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define FUSION_VERSION "%s"\n#define FUSION_REV "%s"\n' '$(VERSION)' '$(GIT_REV)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

FORCE:

# ---- embedded web UI ----------------------------------------------------

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

web: web/dist/index.html

web/dist/index.html: $(WEB_SRCS) $(NPM_STAMP)
	npm run --silent build:web

$(BUILD)/tools/embed: tools/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -O2 $(WARN) -D_GNU_SOURCE -o $@ $<

$(BUILD)/gen/webui.c: web/dist/index.html $(BUILD)/tools/embed
	@mkdir -p $(dir $@)
	$(BUILD)/tools/embed web/dist $@

# ---- sanitizer build and unit tests ------------------------------------

$(BUILD)/asan/%.o: %.c | $(BUILD)/gen/version.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit -O1 -g -std=c17 $(WARN) $(SAN) -c -o $@ $<

$(BUILD)/asan/fusion: $(ASAN_OBJS) $(BUILD)/asan/src/main.o
	$(CC) $(SAN) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/unit_tests: $(ASAN_OBJS) $(UNIT_OBJS)
	$(CC) $(SAN) -o $@ $^ $(LDLIBS) -lcriterion

# Small helper programs the end-to-end tests drive (sanitized too).
$(BUILD)/asan/tools/%: tests/tools/%.c $(ASAN_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -O1 -g -std=c17 $(WARN) $(SAN) -o $@ $< $(ASAN_OBJS) $(LDLIBS)

# ---- quality ------------------------------------------------------------

lint:
	@scripts/lint.sh

format:
	clang-format -i $(shell find src tools tests/unit tests/tools -name '*.h' -o -name '*.c' | sort -u)

clean:
	rm -rf $(BUILD) web/dist

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
