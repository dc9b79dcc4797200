"""Adapters that make ``matrix-federation://`` URLs work in ordinary HTTP clients.

One public module per client, each behind its own extra, e.g. ``mxresolve[httpx]``.
"""
