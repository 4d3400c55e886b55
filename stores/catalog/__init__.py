"""The relational catalog: tenants, API keys, collections, documents, versions and jobs."""

from stores.catalog.catalog import Catalog, NewVersion

__all__ = ["Catalog", "NewVersion"]
