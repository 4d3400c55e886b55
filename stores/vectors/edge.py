"""The embedded vector store: Qdrant's own engine in-process (Qdrant Edge, ``qdrant-edge-py``).

One folder (``GEDRAG_QDRANT__PATH``, default ``<data dir>/qdrant``) holds one Edge shard per
physical collection under ``collections/<name>/``, and ``aliases.json``: the logical names that
point at a physical collection (re-embedding fills a new collection, then moves the alias; the
file is replaced atomically). One process owns the folder: :class:`EdgeEngine` takes an
exclusive ``flock`` on ``.lock`` at open and refuses a second process at once, with the reason.

Each shard has the named ``dense`` vector (cosine; an HNSW graph per tenant, since every
search filters on one), the ``sparse`` vector (the engine applies IDF at query time), the
``sentences`` multivector (MaxSim, no HNSW: it only ever scores the ids a query names) and
payload indexes on the fields searches filter on (``tenant_id`` as the tenant key). Every
search runs in the engine, filter included.

What the engine does, measured with ``qdrant-edge-py`` 0.9.0 on 2 cores:

* **Durability.** Every update is appended to the shard's write-ahead log first: points written
  survive a killed process (SIGKILL, no flush) and are replayed at the next open. ``flush()``
  fsyncs the log and the segments (60-180 ms, even when nothing changed); a background thread
  does it ``flush_interval_s`` after a write (Qdrant server's own interval is 5 s), so a power
  loss can take at most that much; ``close()`` flushes.
* **Indexing.** Writes go to an appendable segment that is searched exactly (no HNSW), so a new
  or small collection answers at once. HNSW graphs and quantised copies are built only by
  :meth:`EdgeVectorStore.optimize`, never by a write, for segments past
  ``indexing_threshold`` chunks; smaller ones stay exact.
* **Threads.** The engine is thread-safe (its own locks) but its Python binding keeps the GIL for
  the whole of every call: two calls never overlap, and ``optimize()`` stops every Python thread
  of the process while it builds (32 s for 20,000 random 384-d points). So writes go in batches
  of ``write_batch`` points (a query waits for one batch, not for a whole document), and
  ``optimize()`` runs only where nothing is served: after bulk loads, at start
  (:func:`infra.migrate.to_edge.prepare`), or from the CLI. A Python lock (shared for reads and
  writes, exclusive for closing, dropping and alias moves) keeps a shard from being closed under
  a call.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import qdrant_edge as qe

from core.errors import ConfigurationError, GedragError, InvalidInput, StoreUnavailable
from stores.vectors import (
    DENSE,
    FLOAT_FIELDS,
    KEYWORD_FIELDS,
    SENTENCES,
    SPARSE,
    SearchFilter,
    VectorHit,
    VectorPoint,
)

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"  # the name qdrant-client's local mode locked: an older gedrag is kept out too
ALIASES_FILE = "aliases.json"
COLLECTIONS_DIR = "collections"
LEGACY_MARKER = "meta.json"  # qdrant-client local mode's catalogue of collections and aliases
CONVERTING_MARKER = "CONVERTING"  # present while a conversion from that layout fills the folder
PAGE = 1000  # ids per lookup or scroll page
# Sentence vectors per chunk, to turn a threshold in chunks into the engine's in KB: the shape
# of bench/scale.py; chunks of ~250 tokens hold 5-10 sentences.
SENTENCES_PER_CHUNK = 6


@dataclass(frozen=True)
class EdgeOptions:
    """How new shards store their vectors, and the write policy (from ``QdrantSettings``)."""

    dense_on_disk: bool = False
    sentences_on_disk: bool = True
    quantization: Literal["none", "int8"] = "none"
    flush_interval_s: float = 5.0
    # Segments holding fewer points stay unindexed (searched exactly); optimize() builds the
    # HNSW index of larger ones. 20,000 384-d points: ~5 ms exact with the tenant filter.
    indexing_threshold: int = 20_000
    # Candidates the HNSW search keeps (Qdrant's default: ef_construct, 100). Measured on
    # 100,000 clustered 384-d points, 10 tenants, dense top 10 with the tenant filter against
    # an exact scan: recall 0.80 at the default, 0.95 at 256, 0.99 at 512 (2.3 ms CPU).
    hnsw_ef: int = 256
    write_batch: int = 64
    search_threads: int | None = None


@dataclass(frozen=True)
class Layout:
    """What a shard stores, read from its ``edge_config.json``."""

    dim: int
    sentences: bool


@dataclass
class _Shard:
    engine: qe.EdgeShard
    layout: Layout
    dirty: bool = False
    written_at: float = field(default=0.0)


class _SharedExclusive:
    """A reader-writer lock: many holders of ``shared()``, or one of ``exclusive()``. Reentrant
    per thread (the holder of ``exclusive()`` may take either again), waiting exclusive holders
    go first so a stream of searches cannot starve a close or an alias move."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._shared = 0
        self._owner: int | None = None
        self._depth = 0
        self._waiting = 0
        self._mine = threading.local()

    @contextmanager
    def shared(self) -> Iterator[None]:
        me = threading.get_ident()
        held = getattr(self._mine, "n", 0)
        with self._cond:
            if self._owner == me:
                self._depth += 1
            elif held:
                self._shared += 1  # nested in this thread's own shared hold: never waits
            else:
                while self._owner is not None or self._waiting:
                    self._cond.wait()
                self._shared += 1
        self._mine.n = held + 1
        try:
            yield
        finally:
            self._mine.n = held
            with self._cond:
                if self._owner == me and self._depth:
                    self._depth -= 1
                else:
                    self._shared -= 1
                    if not self._shared:
                        self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                if getattr(self._mine, "n", 0):
                    raise RuntimeError("exclusive() inside this thread's shared() would deadlock")
                self._waiting += 1
                try:
                    while self._owner is not None or self._shared:
                        self._cond.wait()
                finally:
                    self._waiting -= 1
                self._owner = me
        try:
            yield
        finally:
            with self._cond:
                if self._depth:
                    self._depth -= 1
                else:
                    self._owner = None
                    self._cond.notify_all()


def is_legacy_folder(root: Path) -> bool:
    """A folder made by an earlier gedrag: qdrant-client's local mode (``meta.json`` and
    ``collection/<name>/storage.sqlite``)."""
    return (root / LEGACY_MARKER).is_file()


class EdgeEngine:
    """The shards of one folder, owned by this process (see the module docstring)."""

    def __init__(
        self, root: Path, options: EdgeOptions | None = None, *, converting: bool = False
    ) -> None:
        """``converting``: opened by the conversion from the previous release's layout, the
        only opener allowed while it is unfinished."""
        self.root = root
        self.options = options or EdgeOptions()
        root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _claim(root)
        try:
            if is_legacy_folder(root):
                raise ConfigurationError(
                    f"the local Qdrant folder {root} was made by an earlier gedrag "
                    "(qdrant-client local mode): `gedrag up` converts it at start, or run "
                    "`gedrag migrate vectors-to-edge`"
                )
            if (root / CONVERTING_MARKER).exists() and not converting:
                raise ConfigurationError(
                    f"the local Qdrant folder {root} is being converted from an earlier "
                    "gedrag's layout: `gedrag up` finishes it at start, or run "
                    "`gedrag migrate vectors-to-edge`"
                )
            (root / COLLECTIONS_DIR).mkdir(exist_ok=True)
            self._aliases: dict[str, str] = _read_json(root / ALIASES_FILE)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.lock = _SharedExclusive()
        self._opening = threading.Lock()
        self._shards: dict[str, _Shard] = {}
        self._closed = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        if self.options.flush_interval_s > 0:
            self._flusher = threading.Thread(
                target=self._flush_loop, name="edge-flush", daemon=True
            )
            self._flusher.start()

    # -- names -------------------------------------------------------------------------------

    def resolve(self, name: str) -> str:
        return self._aliases.get(name, name)

    def alias_target(self, name: str) -> str | None:
        return self._aliases.get(name)

    def set_alias(self, alias: str, target: str) -> None:
        """Point ``alias`` at ``target`` (caller holds the lock exclusively); the file is
        replaced in one rename, so a crash leaves the old mapping or the new one."""
        if self._folder(alias).exists():
            raise ConfigurationError(f"{alias!r} is a collection; drop it before aliasing it")
        aliases = {**self._aliases, alias: target}
        _write_json_atomic(self.root / ALIASES_FILE, aliases)
        self._aliases = aliases

    def collections(self) -> list[str]:
        """The physical collections of the folder."""
        return sorted(p.name for p in (self.root / COLLECTIONS_DIR).iterdir() if p.is_dir())

    def aliases(self) -> dict[str, str]:
        return dict(self._aliases)

    def _folder(self, physical: str) -> Path:
        if not physical or "/" in physical or physical.startswith("."):
            raise ConfigurationError(f"invalid collection name {physical!r}")
        return self.root / COLLECTIONS_DIR / physical

    # -- shards ------------------------------------------------------------------------------

    def shard(self, physical: str) -> _Shard | None:
        """The open shard of a physical collection, ``None`` when it does not exist."""
        self._check_open()
        found = self._shards.get(physical)
        if found is not None:
            return found
        with self._opening:
            found = self._shards.get(physical)
            if found is None:
                folder = self._folder(physical)
                if not (folder / "edge_config.json").is_file():
                    return None
                layout = _layout(folder)
                # With the current options: tunables changed since (on disk, quantization,
                # threshold) apply to the shard at its next optimisation.
                config = self.shard_config(layout.dim, layout.sentences)
                with _engine_errors(f"open {physical}"):
                    engine = qe.EdgeShard.load(str(folder), config)
                    _ensure_indexes(engine)
                found = self._shards[physical] = _Shard(engine, layout)
            return found

    def create(self, physical: str, dim: int, *, sentences: bool = True) -> _Shard:
        """The shard of a physical collection, created with its payload indexes when it does
        not exist."""
        self._check_open()
        with self._opening:
            found = self._shards.get(physical)
            if found is not None:
                return found
            folder = self._folder(physical)
            if (folder / "edge_config.json").is_file():  # created by another thread meanwhile
                layout = _layout(folder)
                with _engine_errors(f"open {physical}"):
                    engine = qe.EdgeShard.load(
                        str(folder), self.shard_config(layout.dim, layout.sentences)
                    )
                    _ensure_indexes(engine)
                found = self._shards[physical] = _Shard(engine, layout)
                return found
            # A creation interrupted before its config was written leaves a bare folder.
            if folder.exists() and not (folder / "edge_config.json").is_file():
                shutil.rmtree(folder)
            with _engine_errors(f"create {physical}"):
                engine = qe.EdgeShard.create(str(folder), self.shard_config(dim, sentences))
                _ensure_indexes(engine)
                engine.flush()
            shard = self._shards[physical] = _Shard(engine, Layout(dim, sentences))
            return shard

    def shard_config(self, dim: int, sentences: bool) -> qe.EdgeConfig:
        o = self.options
        dense_quantization = (
            qe.ScalarQuantizationConfig(qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned)
            if o.quantization == "int8"
            else None
        )
        vectors = {
            DENSE: qe.EdgeVectorParams(
                size=dim,
                distance=qe.Distance.Cosine,
                memory=qe.Memory.Cold if o.dense_on_disk else None,
                quantization_config=dense_quantization,
                # Every search filters on one tenant: one HNSW graph per tenant (payload_m on
                # the tenant index), no global graph (m=0), as Qdrant advises for
                # multitenancy. Building the global graph too cost 4x the CPU time at 30,000
                # points, for searches that never use it.
                hnsw_config=qe.HnswIndexConfig(
                    m=0, ef_construct=100, full_scan_threshold=10_000, payload_m=16
                ),
            )
        }
        if sentences:
            vectors[SENTENCES] = qe.EdgeVectorParams(
                size=dim,
                distance=qe.Distance.Cosine,
                multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
                # m=0: no graph; sentence vectors only score the candidates a query names.
                hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10000),
                memory=qe.Memory.Cold if o.sentences_on_disk else None,
            )
        return qe.EdgeConfig(
            vectors=vectors,
            sparse_vectors={SPARSE: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
            # The engine compares each named vector's storage with a size in KB: the sentence
            # multivector (SENTENCES_PER_CHUNK vectors a chunk) is the largest.
            optimizers=qe.EdgeOptimizersConfig(
                indexing_threshold=max(
                    1,
                    o.indexing_threshold
                    * dim
                    * 4
                    * (SENTENCES_PER_CHUNK if sentences else 1)
                    // 1024,
                )
            ),
            max_search_threads=o.search_threads,
        )

    def drop(self, physical: str) -> None:
        """Delete a physical collection and the aliases pointing at it (caller holds the lock
        exclusively). The folder is renamed first, so a crash never leaves half a shard."""
        shard = self._shards.pop(physical, None)
        if shard is not None:
            with _engine_errors(f"close {physical}"):
                shard.engine.close()
        folder = self._folder(physical)
        if folder.exists():
            trash = folder.with_name(f".dropped-{physical}-{uuid.uuid4().hex[:8]}")
            folder.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)
        left = {a: t for a, t in self._aliases.items() if t != physical}
        if left != self._aliases:
            _write_json_atomic(self.root / ALIASES_FILE, left)
            self._aliases = left

    def wrote(self, shard: _Shard) -> None:
        """After a write: flush now (``flush_interval_s`` 0) or wake the flusher."""
        if self.options.flush_interval_s <= 0:
            with _engine_errors("flush"):
                shard.engine.flush()
            return
        if not shard.dirty:
            shard.dirty = True
            shard.written_at = time.monotonic()
            self._wake.set()

    def flush(self) -> None:
        """Fsync every shard written since its last flush."""
        with self.lock.shared():
            for shard in list(self._shards.values()):
                if shard.dirty:
                    shard.dirty = False
                    with _engine_errors("flush"):
                        shard.engine.flush()

    def _flush_loop(self) -> None:
        interval = self.options.flush_interval_s
        while True:
            self._wake.wait()
            self._wake.clear()
            written = [s.written_at for s in list(self._shards.values()) if s.dirty]
            if written:
                # Writes in a burst share one flush, at most `interval` after the first one.
                due = min(written) + interval - time.monotonic()
                if self._stop.wait(max(0.0, due)):
                    return  # closing: close() flushes every shard itself
                try:
                    self.flush()
                except GedragError as exc:  # the next write wakes it again; close flushes
                    log.error("flushing the embedded vector store failed: %s", exc.detail)
            if self._stop.is_set():
                return

    # -- lifecycle ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the embedded vector store is closed")

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self.lock.exclusive():
            if self._closed:
                return
            self._closed = True
            self._stop.set()
            self._wake.set()
            try:
                for name, shard in list(self._shards.items()):
                    with _engine_errors(f"close {name}"):
                        shard.engine.flush()
                        shard.engine.close()
            finally:
                self._shards.clear()
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join(timeout=5)


class EdgeVectorStore:
    """The :class:`~stores.vectors.VectorStore` roles over Qdrant Edge, for one logical
    collection (a plain collection, or an alias of one). Siblings share the engine; the store
    that opened it closes it."""

    def __init__(
        self,
        collection: str,
        *,
        path: Path | None = None,
        options: EdgeOptions | None = None,
        engine: EdgeEngine | None = None,
    ) -> None:
        if engine is None:
            if path is None:
                raise ConfigurationError("the embedded vector store needs a folder (path)")
            engine = EdgeEngine(path, options)
            self._owner = True
        else:
            self._owner = False
        self.collection = collection
        self.engine = engine
        self._warned: set[str] = set()

    # -- internals ---------------------------------------------------------------------------

    @contextmanager
    def _use(self) -> Iterator[_Shard | None]:
        """The shard this store's name resolves to now (``None``: no collection), held shared
        so that no close, drop or alias move happens under the call."""
        with self.engine.lock.shared():
            yield self.engine.shard(self.engine.resolve(self.collection))

    # -- Lifecycle ---------------------------------------------------------------------------

    def ping(self) -> None:
        with self._use() as shard:
            if shard is not None:
                with _engine_errors("ping"):
                    shard.engine.info()

    def close(self) -> None:
        """Close the engine (flushing every shard) when this store opened it; a sibling's
        close releases nothing (the store it came from owns the engine)."""
        if self._owner:
            self.engine.close()

    # -- VectorWriter ------------------------------------------------------------------------

    def ensure_collection(self, dim: int) -> None:
        with self.engine.lock.shared():
            physical = self.engine.resolve(self.collection)
            shard = self.engine.shard(physical) or self.engine.create(physical, dim)
        if shard.layout.dim != dim:
            raise ConfigurationError(
                f"Qdrant collection {self.collection!r} holds {shard.layout.dim}-d vectors, "
                f"the embedding model makes {dim}-d ones"
            )
        if not shard.layout.sentences and physical not in self._warned:
            self._warned.add(physical)
            log.warning(
                "Qdrant collection %r has no sentence vectors (made by an earlier gedrag): "
                "searches score its chunks by their own vector until `gedrag migrate reembed "
                "--switch` rebuilds it with them",
                self.collection,
            )

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        if not points:
            return
        step = max(1, self.engine.options.write_batch)
        for start in range(0, len(points), step):
            # One engine call per batch: the binding holds the GIL for the call, so a search
            # from another thread waits for one batch at most (~5 ms for 64 points), not for
            # a whole document.
            with self._use() as shard:
                if shard is None:
                    raise ConfigurationError(
                        f"Qdrant collection {self.collection!r} does not exist: "
                        "ensure_collection() first"
                    )
                batch = [_edge_point(p, shard.layout) for p in points[start : start + step]]
                with _engine_errors("upsert"):
                    shard.engine.update(qe.UpdateOperation.upsert_points(batch))
                self.engine.wrote(shard)

    def delete(self, tenant_id: str, document_id: str, version_id: str | None = None) -> None:
        self._update(
            "delete",
            qe.UpdateOperation.delete_points_by_filter(
                _document_filter(tenant_id, document_id, version_id)
            ),
        )

    def delete_ids(self, point_ids: Sequence[str]) -> None:
        for start in range(0, len(point_ids), PAGE):
            self._update(
                "delete", qe.UpdateOperation.delete_points(list(point_ids[start : start + PAGE]))
            )

    def set_payload(self, tenant_id: str, document_id: str, payload: dict[str, Any]) -> None:
        self._update(
            "set payload",
            qe.UpdateOperation.set_payload_by_filter(
                _document_filter(tenant_id, document_id), payload
            ),
        )

    def _update(self, what: str, op: qe.UpdateOperation) -> None:
        with self._use() as shard:
            if shard is None:  # no collection: nothing to delete or change
                return
            with _engine_errors(what):
                shard.engine.update(op)
            self.engine.wrote(shard)

    # -- VectorSearcher ----------------------------------------------------------------------

    def search_dense(
        self, vector: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        o = self.engine.options
        params = qe.SearchParams(
            hnsw_ef=max(o.hnsw_ef, limit),
            # int8 copies find the candidates, the original vectors order them.
            quantization=qe.QuantizationSearchParams(rescore=True, oversampling=2.0)
            if o.quantization == "int8"
            else None,
        )
        return self._query(qe.Query.Nearest(list(vector), using=DENSE), flt, limit, params)

    def search_sparse(
        self, indices: Sequence[int], values: Sequence[float], flt: SearchFilter, limit: int
    ) -> list[VectorHit]:
        if not indices:
            return []
        query = qe.Query.Nearest(qe.SparseVector(list(indices), list(values)), using=SPARSE)
        return self._query(query, flt, limit)

    def _query(
        self,
        query: qe.Query,
        flt: SearchFilter,
        limit: int,
        params: qe.SearchParams | None = None,
    ) -> list[VectorHit]:
        request = qe.QueryRequest(
            limit=limit,
            query=query,
            filter=to_filter(flt),
            with_payload=True,
            with_vector=[DENSE],
            params=params,
        )
        with self._use() as shard:
            if shard is None:
                return []
            with _engine_errors("search"):
                found = shard.engine.query(request)
        return [_hit(p) for p in found]

    def fetch(self, point_ids: Sequence[str], flt: SearchFilter) -> list[VectorHit]:
        if not point_ids:
            return []
        request = qe.ScrollRequest(
            limit=len(point_ids),
            filter=to_filter(flt, point_ids),
            with_payload=True,
            with_vector=[DENSE],
        )
        with self._use() as shard:
            if shard is None:
                return []
            with _engine_errors("fetch"):
                records, _ = shard.engine.scroll(request)
        return [_hit(r) for r in records]

    def score_sentences(
        self, vector: Sequence[float], point_ids: Sequence[str], flt: SearchFilter
    ) -> dict[str, float]:
        """One MaxSim query restricted to these ids (the engine scans only them: no HNSW on
        sentence vectors). Points stored without sentences are absent from the answer."""
        if not point_ids:
            return {}
        request = qe.QueryRequest(
            limit=len(point_ids),
            query=qe.Query.Nearest([list(vector)], using=SENTENCES),
            filter=to_filter(flt, point_ids),
            with_payload=False,
            with_vector=False,
        )
        with self._use() as shard:
            if shard is None or not shard.layout.sentences:
                return {}
            with _engine_errors("sentence scores"):
                found = shard.engine.query(request)
        return {str(p.id): float(p.score) for p in found}

    # -- VectorInspector ---------------------------------------------------------------------

    def count(self, tenant_id: str, document_id: str, version_id: str | None = None) -> int:
        request = qe.CountRequest(
            filter=_document_filter(tenant_id, document_id, version_id), exact=True
        )
        with self._use() as shard:
            if shard is None:
                return 0
            with _engine_errors("count"):
                return int(shard.engine.count(request))

    def missing(self, point_ids: Sequence[str]) -> set[str]:
        if not point_ids:
            return set()
        found: set[str] = set()
        with self._use() as shard:
            if shard is None:
                return set(point_ids)
            for start in range(0, len(point_ids), PAGE):
                with _engine_errors("retrieve"):
                    records = shard.engine.retrieve(
                        list(point_ids[start : start + PAGE]),
                        with_payload=False,
                        with_vector=False,
                    )
                found.update(str(r.id) for r in records)
        return set(point_ids) - found

    def point_ids(self, tenant_id: str, document_id: str) -> set[str]:
        return {pid for pid, _ in self._scan(_document_filter(tenant_id, document_id), False)}

    def point_versions(self, tenant_id: str, document_id: str) -> dict[str, str]:
        return {
            pid: str(payload.get("version_id"))
            for pid, payload in self._scan(_document_filter(tenant_id, document_id), ["version_id"])
        }

    def point_index(self) -> dict[tuple[str, str], dict[str, str]]:
        out: dict[tuple[str, str], dict[str, str]] = {}
        fields = ["tenant_id", "document_id", "version_id"]
        for pid, payload in self._scan(None, fields):
            key = (str(payload.get("tenant_id")), str(payload.get("document_id")))
            out.setdefault(key, {})[pid] = str(payload.get("version_id"))
        return out

    def _scan(
        self, flt: qe.Filter | None, payload: bool | list[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        offset: Any = None
        while True:
            # One page per hold: a long scan lets searches and writes in between its pages.
            with self._use() as shard:
                if shard is None:
                    return out
                with _engine_errors("scroll"):
                    records, offset = shard.engine.scroll(
                        qe.ScrollRequest(
                            offset=offset,
                            limit=PAGE,
                            filter=flt,
                            with_payload=payload,
                            with_vector=False,
                        )
                    )
            out.extend((str(r.id), dict(r.payload or {})) for r in records)
            if offset is None:
                return out

    # -- VectorCollections -------------------------------------------------------------------

    def sibling(self, collection: str) -> EdgeVectorStore:
        return EdgeVectorStore(collection, engine=self.engine)

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self.engine.lock.exclusive():
            yield

    def dim(self) -> int | None:
        with self._use() as shard:
            return None if shard is None else shard.layout.dim

    def has_sentences(self) -> bool:
        with self._use() as shard:
            return shard is not None and shard.layout.sentences

    def alias_target(self) -> str | None:
        return self.engine.alias_target(self.collection)

    def point_alias(self, target: str) -> None:
        with self.engine.lock.exclusive():
            self.engine.set_alias(self.collection, target)

    def drop_collection(self, name: str) -> None:
        with self.engine.lock.exclusive():
            self.engine.drop(name)

    def scroll_points(self, offset: Any = None, limit: int = 256) -> tuple[list[VectorPoint], Any]:
        with self._use() as shard:
            if shard is None:
                return [], None
            with _engine_errors("scroll"):
                records, nxt = shard.engine.scroll(
                    qe.ScrollRequest(
                        offset=offset, limit=limit, with_payload=True, with_vector=True
                    )
                )
        return [_point(r) for r in records], None if nxt is None else str(nxt)

    # -- maintenance (not part of the Protocol) ----------------------------------------------

    def optimize(self) -> dict[str, Any]:
        """Build the HNSW graphs (and quantised copies) of the segments that need them, merge
        small segments, vacuum deleted points. Blocks every Python thread of the process while
        it runs (the binding holds the GIL): call it after bulk loads or at start, never while
        serving."""
        with self._use() as shard:
            if shard is None:
                return {"collection": self.collection, "optimized": False}
            started = time.perf_counter()
            with _engine_errors("optimize"):
                changed = shard.engine.optimize()
                shard.engine.flush()
                shard.dirty = False
                info = shard.engine.info()
        return {
            "collection": self.collection,
            "optimized": bool(changed),
            "seconds": round(time.perf_counter() - started, 1),
            "points": int(info.points_count),
            "segments": int(info.segments_count),
        }

    def info(self) -> dict[str, int]:
        """Points and segments of the collection (an optimisation merges and indexes
        segments)."""
        with self._use() as shard:
            if shard is None:
                return {"points": 0, "segments": 0}
            with _engine_errors("info"):
                info = shard.engine.info()
        return {"points": int(info.points_count), "segments": int(info.segments_count)}

    def points(self) -> int:
        with self._use() as shard:
            if shard is None:
                return 0
            with _engine_errors("count"):
                return int(shard.engine.count(qe.CountRequest(exact=True)))

    def flush(self) -> None:
        self.engine.flush()


# -- translation to the engine's types -----------------------------------------------------


def to_filter(flt: SearchFilter, point_ids: Sequence[str] | None = None) -> qe.Filter:
    """The search filter as the engine's: every condition must hold, the tenant always;
    ``point_ids`` restricts it to those points."""
    must: list[Any] = [_match("tenant_id", flt.tenant_id)]
    if point_ids is not None:
        must.append(qe.HasIdCondition(set(point_ids)))
    if flt.collections:
        must.append(_any("collection", flt.collections))
    if flt.tags:
        must.append(_any("tags", flt.tags))
    if flt.document_ids:
        must.append(_any("document_id", flt.document_ids))
    for key, value in (flt.metadata or {}).items():
        must.append(_equal(f"metadata.{key}", value))
    if flt.uploaded_after is not None or flt.uploaded_before is not None:
        must.append(
            qe.FieldCondition(
                "uploaded_at",
                range=qe.RangeFloat(gte=flt.uploaded_after, lte=flt.uploaded_before),
            )
        )
    if flt.document_types:
        must.append(_any("document_type", flt.document_types))
    if flt.correspondents:
        must.append(_any("correspondents", flt.correspondents))
    for cond in flt.fields:
        key = f"fields.{cond.key}"
        if isinstance(cond.value, str):
            must.append(_match(key, cond.value))
        else:
            bounds = (
                {cond.op: float(cond.value)}
                if cond.op != "eq"
                else {
                    "gte": float(cond.value),
                    "lte": float(cond.value),
                }
            )
            must.append(qe.FieldCondition(key, range=qe.RangeFloat(**bounds)))
    if flt.hidden_document_ids:
        return qe.Filter(must=must, must_not=[_any("document_id", flt.hidden_document_ids)])
    return qe.Filter(must=must)


def _match(key: str, value: str | int | bool) -> qe.FieldCondition:
    return qe.FieldCondition(key, match=qe.MatchValue(value))


def _any(key: str, values: Sequence[str]) -> qe.FieldCondition:
    return qe.FieldCondition(key, match=qe.MatchAny([str(v) for v in values]))


def _equal(key: str, value: Any) -> qe.FieldCondition:
    """Equality on a metadata value: strings, integers and booleans match exactly; a float
    matches as the one-point range [v, v] (the engine's match takes no floats)."""
    if isinstance(value, bool):
        # The binding tries int before bool, so MatchValue(True) matches the integer 1 and
        # never a stored true; numpy's bool is no int and reaches the bool variant.
        return qe.FieldCondition(key, match=qe.MatchValue(np.bool_(value)))  # type: ignore[arg-type]
    if isinstance(value, int | str):
        return _match(key, value)
    if isinstance(value, float):
        return qe.FieldCondition(key, range=qe.RangeFloat(gte=value, lte=value))
    raise InvalidInput(
        f"metadata filter {key.removeprefix('metadata.')!r}: a string, number or boolean is "
        f"needed, not {type(value).__name__}",
        field="metadata",
    )


def _document_filter(tenant_id: str, document_id: str, version_id: str | None = None) -> qe.Filter:
    must: list[Any] = [_match("tenant_id", tenant_id), _match("document_id", document_id)]
    if version_id is not None:
        must.append(_match("version_id", version_id))
    return qe.Filter(must=must)


def _edge_point(p: VectorPoint, layout: Layout) -> qe.Point:
    vector: dict[str, Any] = {SPARSE: qe.SparseVector(p.sparse_indices, p.sparse_values)}
    if p.dense:  # none yet: searchable by its terms before its embedding (progressive indexing)
        vector[DENSE] = p.dense
    if p.sentences and layout.sentences:  # a collection made before sentence vectors drops them
        vector[SENTENCES] = p.sentences
    return qe.Point(p.id, vector, p.payload)


def _hit(p: Any) -> VectorHit:
    vectors = p.vector if isinstance(p.vector, dict) else {}
    dense = vectors.get(DENSE)
    return VectorHit(
        id=str(p.id),
        score=float(getattr(p, "score", 0.0) or 0.0),
        payload=dict(p.payload or {}),
        dense=list(dense) if dense is not None else None,
    )


def _point(r: Any) -> VectorPoint:
    vectors = r.vector if isinstance(r.vector, dict) else {}
    sparse = vectors.get(SPARSE)
    return VectorPoint(
        id=str(r.id),
        dense=list(vectors.get(DENSE) or []),
        sparse_indices=[int(i) for i in sparse.indices] if sparse is not None else [],
        sparse_values=[float(v) for v in sparse.values] if sparse is not None else [],
        payload=dict(r.payload or {}),
        sentences=[list(v) for v in vectors.get(SENTENCES) or []],
    )


# -- files ---------------------------------------------------------------------------------


def _claim(root: Path) -> int:
    """Lock the folder for this process (``flock``, released by the kernel if it dies)."""
    fd = os.open(root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        raise ConfigurationError(
            f"the local Qdrant folder {root} is used by another gedrag process"
            + (f" (pid {holder})" if holder.isdigit() else "")
            + "; the embedded engine allows one process per folder: run workers inside "
            "`gedrag up`, or set GEDRAG_QDRANT__URL to a Qdrant server"
        ) from exc
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _read_json(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ConfigurationError(f"{path} is not a JSON object")
    return {str(k): str(v) for k, v in data.items()}


def _write_json_atomic(path: Path, data: dict[str, str]) -> None:
    """Write a temporary file, fsync it, rename it over ``path``, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with tmp.open("w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _ensure_indexes(engine: qe.EdgeShard) -> None:
    """Create the payload indexes the shard lacks (all at creation; at open, those of fields
    added to the filters since it was made).

    Every search filters on the tenant: its index also gets HNSW links per tenant. The others
    (selective or rare filters, answered by the payload index and an exact scan) get none: each
    would add a graph build per value holding more than the full-scan threshold (a version_id
    shared by all points: the whole graph again)."""
    wanted: list[tuple[str, Any]] = [("tenant_id", qe.KeywordIndexParams(is_tenant=True))]
    wanted += [(n, qe.KeywordIndexParams(enable_hnsw=False)) for n in KEYWORD_FIELDS]
    wanted += [(n, qe.FloatIndexParams(enable_hnsw=False)) for n in FLOAT_FIELDS]
    held = set(engine.info().payload_schema)
    for name, params in wanted:
        if name not in held:
            engine.update(qe.UpdateOperation.create_field_index(name, params))


def _layout(folder: Path) -> Layout:
    config = json.loads((folder / "edge_config.json").read_text())
    vectors = config.get("vectors") or {}
    return Layout(dim=int(vectors[DENSE]["size"]), sentences=SENTENCES in vectors)


@contextmanager
def _engine_errors(what: str) -> Iterator[None]:
    """The engine raises bare ``Exception``s: wrong sizes or names are the caller's
    (:class:`ConfigurationError`), anything else an unavailable store (retried)."""
    try:
        yield
    except GedragError:
        raise
    except Exception as exc:
        text = str(exc)
        if "dimension error" in text or "Not existing vector name" in text:
            raise ConfigurationError(f"embedded Qdrant, {what}: {text}") from exc
        raise StoreUnavailable(f"embedded Qdrant unavailable during {what}: {text}") from exc
