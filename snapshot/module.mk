# snapshot/: libsbxsnap.a - capture, restore, forks, zygotes (over
# host/vm/vm.h and host/agent/agent_client.h) and the snapshot store
# (manifests, blobs, verify, reference scanning, delete/GC, export/import).
# Public header: snapshot/snap.h. See docs/snapshots.md.
SNAP_SRCS := $(wildcard snapshot/*.c)
LIBSBXSNAP := $(O)/libsbxsnap.a
SNAP_PKGS := jansson libzstd openssl libarchive
CFLAGS_snapshot := $(call pc_cflags,$(SNAP_PKGS)) $(CFLAGS_host)
LIBS += $(LIBSBXSNAP)
SNAP_LINK := $(LIBSBXSNAP) $(HOST_LINK) $(call pc_libs,$(SNAP_PKGS))

$(LIBSBXSNAP): $(SNAP_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^
