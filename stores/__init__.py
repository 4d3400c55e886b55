"""The stores: the catalog (relational rows), original files, vectors and the graph.

Each kind of store is reached through small Protocols by role (writer, searcher, inspector),
with its implementations side by side; ``stores.factory`` is the one place a backend is chosen.
"""

from __future__ import annotations

from typing import Protocol


class Lifecycle(Protocol):
    """Every store engine: a readiness probe and a close."""

    def ping(self) -> None:
        """One round trip to the engine (readiness); :class:`StoreUnavailable` when down."""
        ...

    def close(self) -> None:
        """Release the engine (files, locks, connections); the store is unusable after."""
        ...
