# sbxd/: the daemon. libsbxd.a holds its layers (store, http, mgr, backend,
# api, dataplane, common; docs/architecture.md); $(O)/sbxd is sbxd/main.c
# linked with it. See docs/sbxd.md.
SBXD_SRCS := $(filter-out sbxd/main.c,$(wildcard sbxd/*.c sbxd/*/*.c sbxd/*/*/*.c))
# the parsers of untrusted request data (no I/O, no lws): the unit suite
# and the fuzz targets link them alone
DP_PURE_SRCS := $(wildcard sbxd/dataplane/parse/*.c)
LIBSBXD := $(O)/libsbxd.a
SBXD_PKGS := libwebsockets jansson sqlite3 openssl
CFLAGS_sbxd := $(call pc_cflags,$(SBXD_PKGS)) $(CFLAGS_snapshot)
SBXD_LIBS := $(call pc_libs,$(SBXD_PKGS))
LIBS += $(LIBSBXD)
BINS += $(O)/sbxd
# everything a program using libsbxd.a links after its own objects
SBXD_LINK := $(LIBSBXD) $(SNAP_LINK) $(SBXD_LIBS)

$(LIBSBXD): $(SBXD_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/sbxd: $(OBJ)/sbxd/main.o $(LIBSBXD) $(LIBSBXSNAP) $(LIBSBXHOST) $(LIBPROTO) $(LIBBASE)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SBXD_LINK)
