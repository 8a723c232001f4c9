# snapshot/vm.mk: the VM half of the snapshot library (capture, restore,
# forks, zygotes), over host/vm.h and host/agent_client.h.
SNAP_LIB_SRCS += snapshot/capture.c snapshot/restore.c snapshot/zygote.c snapshot/vmutil.c
