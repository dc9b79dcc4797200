"""Tools built on the public API: the ``mxresolve`` command, the vector runner, explanations."""
