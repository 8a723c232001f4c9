# host/sbxd.mk - sbxd: the HTTP/WebSocket API server, its SQLite store and
# sandbox manager (libsbxd.a + $(O)/sbxd), and their unit suites.
# Included from host/module.mk.
SBXD_LIB_SRCS := host/store.c host/store_box.c host/store_snap.c host/store_audit.c host/api_audit.c host/sbxd_key.c host/sbxd_config.c \
	host/api_req.c host/api_render.c host/http_server.c host/http_req.c host/http_ws.c \
	host/sbxd_api.c host/api_boxes.c host/api_snapshots.c host/sbxd_mgr.c host/sbxd_pool.c host/sbxd_ttl.c \
	host/sbxd_metrics.c host/sbxd_image.c host/sbxd_vm.c
SBXD_LIB_OBJS := $(SBXD_LIB_SRCS:%.c=$(O)/%.o)
LIBSBXD := $(O)/libsbxd.a
SBXD_PKGS := libwebsockets jansson sqlite3 openssl
SBXD_CFLAGS := $(call pc_cflags,$(SBXD_PKGS))
SBXD_LIBS := $(call pc_libs,$(SBXD_PKGS))
# everything sbxd links after libsbxd.a
SBXD_LINK := $(LIBSBXD) $(O)/libsbxhost.a $(LIBPROTO) $(SBXD_LIBS) $(HOST_LIBS) \
	$(LIBPROTO_LIBS)

LIBS += $(LIBSBXD)
BINS += $(O)/sbxd

$(SBXD_LIB_OBJS) $(O)/host/sbxd.o: CFLAGS += $(SBXD_CFLAGS)
# the real VM backend and sbxd itself use the snapshot library (snapshot/
# module.mk, read after this file: hence = and $$ below)
$(O)/host/sbxd_vm.o $(O)/host/sbxd.o: CFLAGS += -Isnapshot $(SNAP_CFLAGS)

$(LIBSBXD): $(SBXD_LIB_OBJS)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

# The unit suites link libsbxd.a without the snapshot library: they use a
# fake VM backend, so sbxd_vm.o is never pulled in.
$(O)/sbxd: $(O)/host/sbxd.o $(LIBSBXD) $$(LIBSBXSNAP) $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSBXD) $(LIBSBXSNAP) $(O)/libsbxhost.a $(LIBPROTO) \
		$(SBXD_LIBS) $(SNAP_LIBS) $(HOST_LIBS) $(LIBPROTO_LIBS)

# Unit suites (no VM): the store, and the API (validation, and a real
# server on loopback driven with libcurl over a fake VM backend).
SBXD_TEST_CFLAGS := -Ihost $(SBXD_CFLAGS) $(call pc_cflags,check libcurl)
SBXD_TEST_LIBS := $(call pc_libs,check libcurl)
$(O)/tests/unit/check_store.o $(O)/tests/unit/check_api.o $(O)/tests/unit/check_audit.o \
	$(O)/tests/unit/check_metrics.o: \
	CFLAGS += $(SBXD_TEST_CFLAGS)

$(O)/tests/check_store: $(O)/tests/unit/check_store.o $(LIBSBXD)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK) $(SBXD_TEST_LIBS)

$(O)/tests/check_api: $(O)/tests/unit/check_api.o $(LIBSBXD) $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK) $(SBXD_TEST_LIBS)

$(O)/tests/check_audit: $(O)/tests/unit/check_audit.o $(LIBSBXD)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK) $(SBXD_TEST_LIBS)

$(O)/tests/check_metrics: $(O)/tests/unit/check_metrics.o $(LIBSBXD)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK) $(SBXD_TEST_LIBS)

UNIT_BINS += $(O)/tests/check_store $(O)/tests/check_api $(O)/tests/check_audit \
	$(O)/tests/check_metrics

# VM suite: sbxd restarted under kill -9 with two sandboxes (boots real
# microVMs; needs $(O)/sbxd and the default image).
$(O)/tests/integration/check_sbxd.o: CFLAGS += $(SBXD_TEST_CFLAGS)
$(O)/tests/check_sbxd: $(O)/tests/integration/check_sbxd.o $(LIBSBXD)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK) $(SBXD_TEST_LIBS)
$(O)/tests/check_sbxd: | $(O)/sbxd
VM_TEST_BINS += $(O)/tests/check_sbxd
