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

# Unit suite (Check, fork mode): $(O)/tests/check_proto
PROTO_CHECK_LIBS := $(call pc_libs,check)
$(O)/tests/unit/check_proto.o: CFLAGS += $(call pc_cflags,check)

$(O)/tests/check_proto: $(O)/tests/unit/check_proto.o $(LIBPROTO)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(LIBPROTO) $(LIBPROTO_LIBS) $(PROTO_CHECK_LIBS)

UNIT_BINS += $(O)/tests/check_proto
