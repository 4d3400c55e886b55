"""The relational catalog: tenants, API keys, collections, documents, versions and jobs."""

from stores.catalog.catalog import Catalog
from stores.catalog.documents import NewVersion

__all__ = ["Catalog", "NewVersion"]
