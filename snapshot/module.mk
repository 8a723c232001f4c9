# snapshot/: libsbxsnap.a - the snapshot store (manifests, blobs, verify,
# reference scanning, delete/GC, export/import) and, through
# snapshot/vm.mk, capture/restore/zygote (`SNAP_LIB_SRCS += ...` there);
# sbx-snapshot; the check_snap unit suite. See docs/snapshots.md.
SNAP_LIB_SRCS := snapshot/manifest.c snapshot/util.c snapshot/store.c snapshot/verify.c \
	snapshot/refs.c snapshot/export.c
-include snapshot/vm.mk

SNAP_LIB_OBJS = $(SNAP_LIB_SRCS:%.c=$(O)/%.o)
LIBSBXSNAP := $(O)/libsbxsnap.a
SNAP_PKGS := jansson libzstd openssl libarchive
SNAP_CFLAGS := $(call pc_cflags,$(SNAP_PKGS))
SNAP_LIBS := $(call pc_libs,$(SNAP_PKGS))
CFLAGS_snapshot := -Isnapshot -Ihost $(SNAP_CFLAGS) $(CFLAGS_host)
# everything a program using libsbxsnap.a links after its own objects
SNAP_LINK = $(LIBSBXSNAP) $(O)/libsbxhost.a $(LIBPROTO) $(SNAP_LIBS) $(HOST_LIBS) \
	$(LIBPROTO_LIBS)

LIBS += $(LIBSBXSNAP)
BINS += $(O)/sbx-snapshot

.SECONDEXPANSION:
$(LIBSBXSNAP): $$(SNAP_LIB_OBJS)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/tools/sbx-snapshot.o: CFLAGS += -Isnapshot $(SNAP_CFLAGS)
$(O)/sbx-snapshot: $(O)/tools/sbx-snapshot.o $(LIBSBXSNAP) $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(SNAP_LINK)

# Unit suite (no VM): manifests, store, verify, refs/GC, export/import.
SNAP_CHECK_OBJS := $(O)/tests/unit/check_snap.o $(O)/tests/unit/check_snap_io.o
$(SNAP_CHECK_OBJS): CFLAGS += -Isnapshot -Ihost $(SNAP_CFLAGS) $(call pc_cflags,check)
$(O)/tests/check_snap: $(SNAP_CHECK_OBJS) $(LIBSBXSNAP) $(O)/libsbxhost.a $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(SNAP_CHECK_OBJS) $(SNAP_LINK) $(call pc_libs,check)

UNIT_BINS += $(O)/tests/check_snap
