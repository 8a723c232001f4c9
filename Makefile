# SPDX-License-Identifier: Apache-2.0
# sbx - one non-recursive Makefile. Each component adds its targets in its
# own */module.mk; this file holds the shared rules and the entry points.
#
#   make            build everything (libraries, sbx-agent, sbxd, tools)
#   make run        install missing packages, build, build the default image,
#                   then start sbx (see README.md)
#   make test       the same set-up, then every test; ends with "N passed, N failed"
#   make unit       unit suites and fuzz-corpus replay only (no VM)
#   make asan       ASan/UBSan build and unit suites in build-asan/
#   make fuzz       libFuzzer targets (clang) in build-fuzz/
#   make bench      benchmarks (figures printed, nothing asserted)
#   make layering   check includes against docs/architecture.md
#   make image      build/images/default (cached)
#   V=1             show full command lines

O ?= build
OBJ = $(O)/obj
V ?= 0
SANITIZE ?= 0
FUZZ_TIME ?= 30

ifeq ($(V),1)
Q :=
quiet = @true
else
Q := @
quiet = @printf '  %-6s %s\n'
endif

# make's built-in default is cc; sbx is built and tested with gcc
ifeq ($(origin CC),default)
CC := gcc
endif
PKG_CONFIG ?= pkg-config

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral \
	-Werror=implicit-function-declaration -Werror=missing-prototypes \
	-Werror=strict-prototypes -Wno-missing-field-initializers
# Includes name their folder from the top ("host/vm/vm.h"): -I. only.
# Hardening: sbxd runs as root and parses what clients and guests send.
CFLAGS := -std=gnu11 -O2 -g $(WARN) -D_GNU_SOURCE -fno-strict-aliasing \
	-fstack-protector-strong -fPIE -I. -MMD -MP $(EXTRA_CFLAGS)
LDFLAGS := -pie -Wl,-z,relro,-z,now $(EXTRA_LDFLAGS)

ifeq ($(SANITIZE),1)
CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS += -fsanitize=address,undefined
AGENT_STATIC :=
else
CFLAGS += -D_FORTIFY_SOURCE=2
AGENT_STATIC := -static
endif

pc_cflags = $(shell $(PKG_CONFIG) --cflags $(1) 2>/dev/null)
pc_libs = $(shell $(PKG_CONFIG) --libs $(1) 2>/dev/null)

# Filled in by the module.mk files.
BINS :=
LIBS :=
UNIT_BINS :=
CLEAN_EXTRA :=

.PHONY: all clean run test unit asan fuzz fuzz-run bench image deps \
	format format-check layering test-bins check-all
all:

include base/module.mk
include protocol/module.mk
include guest/module.mk
include host/module.mk
include snapshot/module.mk
include sbxd/module.mk
include tools/module.mk
include rootfs/module.mk
include tests/module.mk

all: $(LIBS) $(BINS)

# Objects made through pattern rules (fuzz replays, suites) are kept.
.SECONDARY:

$(OBJ)/%.o: %.c
	$(quiet) CC $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $(CFLAGS_$(firstword $(subst /, ,$<))) -c -o $@ $<

# Installs the Debian packages and system set-up that sbx needs (idempotent).
deps:
	$(Q)tools/deps.sh

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory image
	$(Q)tools/run.sh

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory image
	$(Q)$(MAKE) --no-print-directory check-all

asan:
	$(Q)$(MAKE) --no-print-directory O=build-asan SANITIZE=1 unit

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

# The layering of docs/architecture.md (make test runs it too).
layering:
	$(Q)tools/check-layering.sh $(O) && tools/check-layering.sh --self-test

format-check:
	$(Q)clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(O) build-asan build-fuzz $(CLEAN_EXTRA)

-include $(shell find $(O) -name '*.d' -type f -not -path '$(O)/images/*' 2>/dev/null)
