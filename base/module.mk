# base/: libbase.a - what every C file may use: cleanup attributes, logging,
# the error convention, clocks and I/O helpers (no library but libc).
BASE_SRCS := $(wildcard base/*.c)
LIBBASE := $(O)/libbase.a
LIBS += $(LIBBASE)

$(LIBBASE): $(BASE_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^
