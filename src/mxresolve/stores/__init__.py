"""Cache stores shared between processes, one module per backend, each behind an extra.

* ``mxresolve.stores.redis``: Redis or Valkey (``pip install mxresolve[redis]``).

A store plugs into a resolver with ``Resolver(store=...)`` or
``AsyncResolver(store=...)``; see docs/shared-cache.md.
"""
