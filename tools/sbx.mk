# tools/sbx.mk - sbx, the command-line tool over sbxd's API (libcurl for
# HTTP, libwebsockets for the command stream, jansson for JSON), its unit
# suite and its end-to-end test. Included from tools/module.mk.
SBX_LIB_SRCS := tools/sbx_util.c tools/sbx_config.c tools/sbx_text.c tools/sbx_http.c \
	tools/sbx_frame.c tools/sbx_ws.c tools/sbx_boxes.c tools/sbx_audit.c tools/sbx_exec.c tools/sbx_cp.c \
	tools/sbx_snapshots.c
SBX_LIB_OBJS := $(SBX_LIB_SRCS:%.c=$(O)/%.o)
SBX_PKGS := libcurl libwebsockets jansson
SBX_CFLAGS := $(call pc_cflags,$(SBX_PKGS))
SBX_LIBS := $(call pc_libs,$(SBX_PKGS))
LIBSBXCLI := $(O)/tools/libsbxcli.a

BINS += $(O)/sbx

$(SBX_LIB_OBJS) $(O)/tools/sbx.o $(O)/tests/unit/check_sbx.o: CFLAGS += $(SBX_CFLAGS)

$(LIBSBXCLI): $(SBX_LIB_OBJS)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/sbx: $(O)/tools/sbx.o $(LIBSBXCLI)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSBXCLI) $(SBX_LIBS)

# Unit suite (no server): config files, NAME:PATH, URLs, error bodies,
# the command-stream messages, UTF-8 boundaries.
$(O)/tests/unit/check_sbx.o: CFLAGS += -Itools $(call pc_cflags,check)
$(O)/tests/check_sbx: $(O)/tests/unit/check_sbx.o $(LIBSBXCLI)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSBXCLI) $(SBX_LIBS) $(call pc_libs,check)

UNIT_BINS += $(O)/tests/check_sbx

# End to end against a real sbxd and real microVMs (needs $(O)/sbxd and
# the default image); prints a Check-style summary line.
EXTRA_TEST_STEPS += tests/integration/sbx_cli.sh
# kill -9 of sbxd during create, exec, snapshot, stop, delete (docs/sbxd.md)
EXTRA_TEST_STEPS += tests/integration/crash_loop.sh
test-bins: $(O)/sbx
