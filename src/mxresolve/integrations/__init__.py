"""Adapters that make ``matrix-federation://`` URLs work in ordinary HTTP clients.

One public module per client, each behind its own extra:

* ``mxresolve.integrations.httpx`` (``mxresolve[httpx]``): ``MatrixFederationTransport``,
  ``AsyncMatrixFederationTransport``;
* ``mxresolve.integrations.aiohttp`` (``mxresolve[aiohttp]``): ``MatrixFederationConnector``;
* ``mxresolve.integrations.twisted`` (``mxresolve[twisted]``): ``MatrixFederationAgent``.

What they decide alike (the server name from the URL, the pool key, failover) lives in
the sans-I/O ``_federation`` module; its public names are here. docs/requests.md has
an example per client.
"""

from ._federation import Attempt, InvalidFederationURL, PoolKey

__all__ = ["Attempt", "InvalidFederationURL", "PoolKey"]
