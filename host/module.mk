# host/: the host library (VM driver, agent client) and sbxd.
#
# libsbxhost.a is built from the explicit list HOST_LIB_SRCS: other host/
# modules append their files with `HOST_LIB_SRCS += host/foo.c` (in this file
# or any module.mk; the list is expanded when make builds, not when it reads).
include host/agent_client.mk
HOST_LIB_SRCS += host/vm.c host/vm_driver.c host/vm_xml.c host/vm_accel.c host/vm_util.c \
	host/vm_snap.c host/vm_console.c host/vm_events.c host/log_json.c

HOST_LIB_OBJS = $(HOST_LIB_SRCS:%.c=$(O)/%.o)
LIBSBXHOST := $(O)/libsbxhost.a
CFLAGS_host := $(call pc_cflags,libvirt libvirt-qemu jansson)
HOST_LIBS := $(call pc_libs,libvirt libvirt-qemu jansson) -lpthread
LIBS += $(LIBSBXHOST)

.SECONDEXPANSION:
$(LIBSBXHOST): $$(HOST_LIB_OBJS)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

# VM driver tests: they boot real microVMs (TCG here), so they are not in
# UNIT_BINS; whoever runs the integration tests runs VM_TEST_BINS.
CHECK_CFLAGS := $(call pc_cflags,check)
CHECK_LIBS := $(call pc_libs,check)
VM_TEST_BINS += $(O)/tests/check_vm

$(O)/tests/unit/check_vm.o: CFLAGS += -Ihost $(CFLAGS_host) $(CHECK_CFLAGS)

$(O)/tests/check_vm: $(O)/tests/unit/check_vm.o $(LIBSBXHOST)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSBXHOST) $(HOST_LIBS) $(CHECK_LIBS)
-include host/sbxd.mk
-include host/dp.mk

# The JSON log sink (no VM).
UNIT_BINS += $(O)/tests/check_log
$(O)/tests/unit/check_log.o: CFLAGS += -Ihost $(CFLAGS_host) $(CHECK_CFLAGS)
$(O)/tests/check_log: $(O)/tests/unit/check_log.o $(LIBSBXHOST)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBSBXHOST) $(HOST_LIBS) $(CHECK_LIBS)
