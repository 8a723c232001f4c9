# protocol/: libproto.a - framing, messages, credit accounting. No I/O.
PROTO_SRCS := $(wildcard protocol/*.c)
LIBPROTO := $(O)/libproto.a
CFLAGS_protocol := $(call pc_cflags,msgpack libzstd)
LIBS += $(LIBPROTO)
# everything a program using libproto.a links after its own objects
PROTO_LINK := $(LIBPROTO) $(LIBBASE) -lmsgpackc -lzstd

$(LIBPROTO): $(PROTO_SRCS:%.c=$(OBJ)/%.o)
	$(quiet) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^
