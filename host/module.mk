# host/: libsbxhost.a - the VM driver over libvirt (host/vm/, public header
# host/vm/vm.h) and the host side of the agent protocol (host/agent/, public
# header host/agent/agent_client.h). See docs/vm-driver.md, docs/agent.md.
HOST_SRCS := $(wildcard host/vm/*.c host/agent/*.c)
LIBSBXHOST := $(O)/libsbxhost.a
HOST_PKGS := libvirt libvirt-qemu jansson libxml-2.0
CFLAGS_host := $(call pc_cflags,$(HOST_PKGS))
LIBS += $(LIBSBXHOST)
HOST_LINK := $(LIBSBXHOST) $(PROTO_LINK) $(call pc_libs,$(HOST_PKGS)) -lpthread

$(LIBSBXHOST): $(HOST_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^
