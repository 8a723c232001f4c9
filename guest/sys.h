/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sys.h - INFO, SHUTDOWN and FIXUP.
 */
#pragma once

#include "protocol/proto.h"

struct conn;

void sys_on_info(struct conn *c, const struct proto_msg *m);
/* OK, then: PID 1 powers off (or reboots); an ordinary agent exits 0. */
void sys_on_shutdown(struct conn *c, const struct proto_msg *m);
/* Clock, entropy and hostname after a snapshot restore or fork. */
void sys_on_fixup(struct conn *c, const struct proto_msg *m);
