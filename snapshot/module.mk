# snapshot/: capture, restore and fork (issue 4).
