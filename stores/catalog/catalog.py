"""The relational catalog: one database object and a repository per aggregate.

``catalog.tenants`` (tenants, API keys), ``catalog.collections``, ``catalog.documents``
(documents and their versions' registration), ``catalog.versions`` (indexing status, the active
version), ``catalog.chunks`` (chunk records) and ``catalog.jobs``; staged chunk records
(:mod:`stores.catalog.staging`), migration state (:mod:`stores.catalog.migration_state`) and
evaluation runs (:mod:`stores.catalog.evaluation`) live beside them on the same database.
"""

from __future__ import annotations

from stores.catalog.access import AccessRepository
from stores.catalog.chunks import ChunkRepository
from stores.catalog.collections import CollectionRepository
from stores.catalog.database import Database
from stores.catalog.documents import DocumentRepository
from stores.catalog.jobs import JobRepository
from stores.catalog.people import PeopleRepository
from stores.catalog.records import RecordsRepository
from stores.catalog.sorting import SortingRepository
from stores.catalog.sources import SourceRepository
from stores.catalog.tenants import TenantRepository
from stores.catalog.traces import TraceRepository
from stores.catalog.versions import VersionRepository


class Catalog(Database):
    """The catalog database with its repositories."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        super().__init__(url, echo=echo)
        self.tenants = TenantRepository(self)
        self.collections = CollectionRepository(self)
        self.documents = DocumentRepository(self, self.collections)
        self.versions = VersionRepository(self, self.documents)
        self.chunks = ChunkRepository(self)
        self.jobs = JobRepository(self)
        self.sorting = SortingRepository(self)
        self.records = RecordsRepository(self)
        self.sources = SourceRepository(self)
        self.traces = TraceRepository(self)
        # Issue #19: people (users, groups, keys, sessions), access lists, the audit trail.
        self.people, self.access = PeopleRepository(self), AccessRepository(self)
        self.audit = self.records.trail
