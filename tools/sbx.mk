# tools/sbx.mk - sbx, the command-line tool over sbxd's API (libcurl for
# HTTP, libwebsockets for the command stream, jansson for JSON). Included
# from tools/module.mk; its tests are in tests/unit/unit.mk and
# tests/integration/integration.mk.
SBX_LIB_SRCS := tools/sbx_util.c tools/sbx_config.c tools/sbx_text.c tools/sbx_http.c \
	tools/sbx_frame.c tools/sbx_ws.c tools/sbx_boxes.c tools/sbx_audit.c tools/sbx_exec.c \
	tools/sbx_cp.c tools/sbx_snapshots.c
SBX_PKGS := libcurl libwebsockets jansson
CFLAGS_tools += $(call pc_cflags,$(SBX_PKGS))
LIBSBXCLI := $(O)/libsbxcli.a
SBX_LINK := $(LIBSBXCLI) $(LIBBASE) $(call pc_libs,$(SBX_PKGS))
BINS += $(O)/sbx

$(LIBSBXCLI): $(SBX_LIB_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/sbx: $(OBJ)/tools/sbx.o $(LIBSBXCLI) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBX_LINK)
