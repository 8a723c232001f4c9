# guest/: sbx-agent, the static PID 1 of every sandbox.
