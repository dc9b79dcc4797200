"""The sans-I/O core: the server-name grammar, the well-known document, cache headers,
SRV ordering, the cache, the state machine, its events, settings and errors.

Nothing here opens a socket, reads a clock or draws a random number.
"""
