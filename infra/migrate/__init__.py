"""Store migrations for operators (`gedrag migrate ...`).

* :mod:`infra.migrate.graph`: dual write between two graph stores, resumable backfill with
  checkpoints, cutover and rollback of the store that serves reads.
* :mod:`infra.migrate.vectors`: re-embedding into a new Qdrant collection while the old one
  serves, then an alias switch in one step; copy of collections between Qdrant instances.
* :mod:`infra.migrate.verify`: per-document counts and checksums across catalog, Qdrant and
  graph stores; repair re-indexes exactly the drifted documents.
* :mod:`infra.migrate.production`: embedded stores → Qdrant server, PostgreSQL and Neo4j.

Every function is idempotent (deterministic ids, upserts) and resumable (checkpoints in the
catalog's ``migration_state``); every CLI run is logged in ``migration_runs``.
"""
