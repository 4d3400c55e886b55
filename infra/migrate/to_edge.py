"""Upgrade of the embedded vector folder: qdrant-client's local mode → Qdrant Edge.

gedrag before Qdrant Edge kept its vectors in qdrant-client's local mode: ``<path>/meta.json``
(collections and aliases) and ``<path>/collection/<name>/storage.sqlite``. This converts such a
folder, at ``gedrag up`` start (:func:`prepare`) or with ``gedrag migrate vectors-to-edge``:

1. the old folder is renamed aside, whole, to ``<path>.local-mode`` (one rename, under the old
   folder's lock, so no older gedrag still runs on it) and is kept until the operator runs
   ``gedrag migrate vectors-to-edge --finalize``: nothing is deleted before that;
2. every collection is copied, points with their vectors and payload, into an Edge shard of the
   same name and layout (a collection without sentence vectors stays without), one checkpoint
   per page in the catalog (``migration_state``, key ``vectors.to_edge``), written after the
   page is flushed to disk: an interrupted conversion resumes at its last page (upserts by id
   make a page copied twice harmless);
3. each collection's point count is compared with the old one (a difference stops the
   conversion, which a rerun resumes), its HNSW index is built, then the aliases are copied.

Reading the old folder needs qdrant-client's local mode once (it loads a whole collection into
memory: ~65 s and 3 GB for 20,000 chunks).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient

from core.errors import ConfigurationError, Conflict
from core.settings import Settings
from runtime import Runtime
from stores.catalog import migration_state
from stores.factory import edge_options
from stores.vectors import DENSE, SENTENCES, SPARSE, VectorPoint
from stores.vectors.edge import (
    CONVERTING_MARKER,
    LOCK_FILE,
    EdgeEngine,
    EdgeVectorStore,
    is_legacy_folder,
)

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
STATE_KEY = "vectors.to_edge"
ASIDE_SUFFIX = ".local-mode"
PAGE = 500


def aside(settings: Settings) -> Path:
    """Where the previous release's folder is kept until finalized."""
    path = settings.qdrant_path
    return path.with_name(path.name + ASIDE_SUFFIX)


def pending(rt: Runtime) -> bool:
    """Whether the embedded folder still needs (the rest of) a conversion."""
    if rt.settings.qdrant.url:
        return False
    if is_legacy_folder(rt.settings.qdrant_path):
        return True
    state = migration_state.get_state(rt.catalog, STATE_KEY) or {}
    return aside(rt.settings).is_dir() and not state.get("complete")


def convert(
    rt: Runtime,
    *,
    restart: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Convert the folder (or finish an interrupted conversion); see the module docstring.
    ``restart``: copy every collection again from the folder kept aside (the Edge
    collections it made are dropped first)."""
    settings = rt.settings
    if settings.qdrant.url:
        raise ConfigurationError("GEDRAG_QDRANT__URL is set: there is no embedded folder")
    path, old = settings.qdrant_path, aside(settings)
    state = migration_state.get_state(rt.catalog, STATE_KEY) or {}
    if is_legacy_folder(path):
        if old.exists():
            raise Conflict(
                f"both {path} (previous release's layout) and {old} exist: keep one "
                "(rename the other away) and run `gedrag migrate vectors-to-edge` again"
            )
        if dry_run:
            return {"folder": str(path), **_describe(path)}
        _move_aside(path, old)
        state = {"started_at": datetime.now(UTC).isoformat(), "collections": {}}
        migration_state.put_state(rt.catalog, STATE_KEY, state)
    elif not old.is_dir() or (state.get("complete") and not restart):
        return {"folder": str(path), "converted": False, "reason": "nothing to convert"}
    elif dry_run:
        return {"folder": str(old), "resuming": not restart, **_describe(old)}
    elif restart:
        _drop_converted(rt, path, old)
        state = {"started_at": datetime.now(UTC).isoformat(), "collections": {}}
        migration_state.put_state(rt.catalog, STATE_KEY, state)
    return _copy(rt, old, path, state, progress)


def finalize(rt: Runtime, *, dry_run: bool = False) -> dict[str, Any]:
    """Delete the previous release's folder kept aside, once the conversion is complete."""
    old = aside(rt.settings)
    state = migration_state.get_state(rt.catalog, STATE_KEY) or {}
    if not old.exists():
        return {"deleted": None, "reason": f"{old} does not exist"}
    if not state.get("complete"):
        raise Conflict(
            f"the conversion of {old} is not complete: run `gedrag migrate vectors-to-edge`"
        )
    if not dry_run:
        shutil.rmtree(old)
        migration_state.put_state(rt.catalog, STATE_KEY, {**state, "finalized": True})
    return {"deleted": str(old)}


def prepare(rt: Runtime) -> None:
    """At the start of a process that owns the embedded folder: convert a folder of the
    previous release (said in the log, with counts), open the store (claiming the folder),
    and build the HNSW index of segments grown past ``GEDRAG_QDRANT__INDEXING_THRESHOLD``
    before anything is served (the engine stops the process while it builds)."""
    if rt.settings.qdrant.url:
        return
    if pending(rt):
        log.warning(
            "the local Qdrant folder %s was made by an earlier gedrag (qdrant-client local "
            "mode): converting it to Qdrant Edge now; the old folder is kept at %s",
            rt.settings.qdrant_path,
            aside(rt.settings),
        )
        summary = convert(rt)
        log.warning(
            "converted the local Qdrant folder to Qdrant Edge: %s; delete the old folder "
            "with `gedrag migrate vectors-to-edge --finalize` once satisfied",
            ", ".join(f"{name}: {c['copied']} points" for name, c in summary["collections"].items())
            or "no collections",
        )
    elif aside(rt.settings).is_dir():
        log.info(
            "the previous release's Qdrant folder is kept at %s until `gedrag migrate "
            "vectors-to-edge --finalize`",
            aside(rt.settings),
        )
    store = rt.vectors
    if isinstance(store, EdgeVectorStore):
        report = store.optimize()  # a no-op (microseconds) when no segment needs it
        if report["optimized"]:
            log.info(
                "indexed the vector collection before serving: %s points in %s segments, %s s",
                report["points"],
                report["segments"],
                report["seconds"],
            )


# -- steps ----------------------------------------------------------------------------------


def _move_aside(path: Path, old: Path) -> None:
    """Rename the whole folder, holding its lock: an older gedrag still running on it (its
    qdrant-client holds the same lock) makes this fail instead."""
    fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigurationError(
                f"the local Qdrant folder {path} is used by another process (an older gedrag "
                "still running?): stop it, then start again"
            ) from exc
        os.rename(path, old)
        parent = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(parent)
        finally:
            os.close(parent)
    finally:
        os.close(fd)


def _drop_converted(rt: Runtime, path: Path, old: Path) -> None:
    names = _describe(old)["collections"]
    engine = EdgeEngine(path, edge_options(rt.settings), converting=True)
    try:
        with engine.lock.exclusive():
            for name in names:
                engine.drop(name)
    finally:
        engine.close()


def _describe(folder: Path) -> dict[str, Any]:
    client = QdrantClient(path=str(folder))
    try:
        names = [c.name for c in client.get_collections().collections]
        return {
            "collections": {n: int(client.count(n, exact=True).count) for n in names},
            "aliases": {a.alias_name: a.collection_name for a in client.get_aliases().aliases},
        }
    finally:
        client.close()


def _copy(
    rt: Runtime, old: Path, path: Path, state: dict[str, Any], progress: Progress | None
) -> dict[str, Any]:
    client = QdrantClient(path=str(old))
    engine = EdgeEngine(path, edge_options(rt.settings), converting=True)
    marker = path / CONVERTING_MARKER
    marker.touch()  # nothing else opens the folder until the conversion is complete
    try:
        names = [c.name for c in client.get_collections().collections]
        total = sum(int(client.count(n, exact=True).count) for n in names)
        done = 0
        for name in names:
            entry = dict(state.get("collections", {}).get(name) or {})
            if not entry.get("complete"):
                entry = _copy_collection(rt, client, engine, name, entry, state, progress, done)
            done += int(entry["copied"])
            if progress:
                progress(done, total)
        with engine.lock.exclusive():
            for a in client.get_aliases().aliases:
                if engine.alias_target(a.alias_name) != a.collection_name:
                    engine.set_alias(a.alias_name, a.collection_name)
        state = {
            **state,
            "aliases": engine.aliases(),
            "complete": True,
            "finished_at": datetime.now(UTC).isoformat(),
        }
        # Every collection is copied and checked: the folder may serve before the state says
        # so (a crash in between resumes into a no-op), never the other way round.
        marker.unlink()
        migration_state.put_state(rt.catalog, STATE_KEY, state)
        return {
            "folder": str(path),
            "converted": True,
            "kept_at": str(old),
            "collections": state["collections"],
            "aliases": state["aliases"],
        }
    finally:
        engine.close()
        client.close()


def _copy_collection(
    rt: Runtime,
    client: QdrantClient,
    engine: EdgeEngine,
    name: str,
    entry: dict[str, Any],
    state: dict[str, Any],
    progress: Progress | None,
    done: int,
) -> dict[str, Any]:
    vectors = client.get_collection(name).config.params.vectors
    if not isinstance(vectors, dict) or DENSE not in vectors:
        raise ConfigurationError(f"collection {name!r} has no named dense vector: not gedrag's")
    store = EdgeVectorStore(name, engine=engine)
    if store.dim() is None:
        engine.create(name, int(vectors[DENSE].size), sentences=SENTENCES in vectors)
    offset, copied = entry.get("offset"), int(entry.get("copied", 0))
    while not entry.get("scrolled"):
        records, offset = client.scroll(
            name, limit=PAGE, offset=offset, with_payload=True, with_vectors=True
        )
        store.upsert([_point(r) for r in records])
        engine.flush()  # durable before the checkpoint says so
        copied += len(records)
        entry = {
            "offset": None if offset is None else str(offset),
            "copied": copied,
            "scrolled": offset is None,
        }
        state.setdefault("collections", {})[name] = entry
        migration_state.put_state(rt.catalog, STATE_KEY, state)
        if progress:
            progress(done + copied, None)
    expected, held = int(client.count(name, exact=True).count), store.points()
    if expected != held:
        raise Conflict(
            f"collection {name!r}: {held} points in Qdrant Edge, {expected} in the old folder; "
            "`gedrag migrate vectors-to-edge --restart` copies it again"
        )
    optimized = store.optimize()
    entry = {"copied": held, "complete": True, "index_s": optimized.get("seconds", 0.0)}
    state.setdefault("collections", {})[name] = entry
    migration_state.put_state(rt.catalog, STATE_KEY, state)
    return entry


def _point(r: Any) -> VectorPoint:
    vector = r.vector if isinstance(r.vector, dict) else {}
    sparse = vector.get(SPARSE)
    return VectorPoint(
        id=str(r.id),
        dense=list(vector[DENSE]),
        sparse_indices=list(sparse.indices) if sparse else [],
        sparse_values=list(sparse.values) if sparse else [],
        payload=r.payload or {},
        sentences=[list(v) for v in vector.get(SENTENCES) or []],
    )
