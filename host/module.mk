# host/: the host library (VM driver, agent client) and sbxd.
