"""I/O: the drivers (``Resolver``, ``AsyncResolver``, ``FakeWorld``) and the DNS and HTTPS
transports they loop over. Everything here talks to the core through its events.
"""
