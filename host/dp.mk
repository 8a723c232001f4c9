# host/dp.mk - sbxd's data plane (host/dp*.c, docs/dataplane.md): part of
# libsbxd.a, and its unit suite. Included from host/module.mk after
# host/sbxd.mk.
#
# DP_PURE_SRCS are the parsers of untrusted request data (no I/O, no lws):
# the unit suite and the fuzz targets (tests/fuzz/dp.mk) link them alone.
DP_PURE_SRCS := host/dp_utf8.c host/dp_outbuf.c host/dp_multipart.c host/dp_glob.c \
	host/dp_parse.c host/dp_fileparse.c
DP_SRCS := $(DP_PURE_SRCS) host/dp.c host/dp_conn.c host/dp_cmd.c host/dp_ws.c \
	host/dp_exec_http.c host/dp_files.c host/dp_search.c host/dp_sync.c
DP_OBJS := $(DP_SRCS:%.c=$(O)/%.o)
DP_PURE_OBJS := $(DP_PURE_SRCS:%.c=$(O)/%.o)

$(DP_OBJS): CFLAGS += -Ihost $(SBXD_CFLAGS)
$(LIBSBXD): $(DP_OBJS)

# Unit suite: the pure pieces (UTF-8 chunks, output buffers, multipart,
# globs, ranges, WebSocket frames).
$(O)/tests/unit/check_dp.o: CFLAGS += $(SBXD_TEST_CFLAGS)
$(O)/tests/check_dp: $(O)/tests/unit/check_dp.o $(DP_PURE_OBJS)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(call pc_libs,jansson check)

UNIT_BINS += $(O)/tests/check_dp
