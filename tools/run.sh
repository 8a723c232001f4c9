#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# `make run`: until the API daemon (sbxd) exists, boot the default image in a
# throwaway microVM and run one command in it, to show the stack works.
set -eu
O=${O:-build}
echo "run: booting a microVM from $O/images/default and running a command in it"
echo "run: (under TCG, without KVM, a cold boot takes several seconds)"
exec "$O/sbx-agentctl" -v run -- sh -c 'echo "hello from $(hostname): $(uname -sr), $(python3 --version)"'
