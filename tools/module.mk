# tools/: sbx-agentctl and friends.
