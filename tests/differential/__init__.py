"""Differential run: mxresolve against Synapse's resolver on the loopback world."""
