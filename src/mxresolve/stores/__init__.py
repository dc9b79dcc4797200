"""Cache stores shared between processes, one module per backend, each behind an extra.

* ``mxresolve.stores.redis``: Redis or Valkey (``pip install mxresolve[redis]``).

A store plugs into a resolver with ``Resolver(store=...)`` or
``AsyncResolver(store=...)``; see docs/shared-cache.md. To write one for another
backend, implement :class:`CacheStore` (blocking) or :class:`AsyncCacheStore`.
"""

from .._core.store import AsyncCacheStore, CacheStore

__all__ = ["AsyncCacheStore", "CacheStore"]
