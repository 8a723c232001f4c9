# protocol/: libproto.a - framing, messages, credit accounting. No I/O.
PROTO_SRCS := $(wildcard protocol/*.c)
PROTO_OBJS := $(PROTO_SRCS:%.c=$(O)/%.o)
LIBPROTO := $(O)/libproto.a
LIBPROTO_LIBS := -lmsgpackc -lzstd
CFLAGS_protocol := $(call pc_cflags,msgpack libzstd)
LIBS += $(LIBPROTO)

$(LIBPROTO): $(PROTO_OBJS)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^
