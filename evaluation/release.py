"""A pipeline release: the whole pipeline configuration as one YAML file, identified by the hash
of its canonical form.

The canonical form fills in every default and adds what the code fixes (chunker and sparse
encoder name/version, the prompt template's hash), so two files that configure the same pipeline
get the same id, and a code change that alters results changes it. Only the ``ingestion`` half
decides what is indexed: two releases with the same ingestion half share an index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core import ids
from core.errors import InvalidInput
from core.settings import (
    DEFAULT_EMBEDDING_MODEL,
    ChunkingSettings,
    EntitySettings,
    GenerationSettings,
    RetrievalSettings,
    Settings,
)
from ingestion.indexing import chunker_config
from retrieval.prompt import SYSTEM_PROMPT
from textmodels.embedding import installed_revision
from textmodels.sparse import SparseEncoder

# The release files shipped with gedrag (package data: found in an installed gedrag too).
RELEASES_DIR = Path(str(resources.files("evaluation") / "releases"))


class EmbeddingPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = DEFAULT_EMBEDDING_MODEL
    revision: str | None = Field(
        default=None, description="Model revision; unset = the installed one (recorded)."
    )
    sentences: bool = Field(default=True, description="Sentence vectors beside chunk vectors.")


class IngestionPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    chunking: ChunkingSettings = ChunkingSettings()
    embedding: EmbeddingPart = EmbeddingPart()
    entities: EntitySettings = EntitySettings()


class GenerationPart(GenerationSettings):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(default="grounded-v1", description="Name of the prompt template.")


class ReleaseFile(BaseModel):
    """The YAML file as written by people: every section optional, defaults filled in."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    ingestion: IngestionPart = IngestionPart()
    retrieval: RetrievalSettings = RetrievalSettings()
    generation: GenerationPart = GenerationPart()


@dataclass(frozen=True)
class Release:
    """A parsed release: its name, its canonical config, and the ids derived from it."""

    name: str
    description: str
    config: dict[str, Any]

    @property
    def id(self) -> str:
        return "rel_" + ids.content_hash(self.config)[:16]

    @property
    def ingestion_id(self) -> str:
        """What decides the index: releases sharing it share an ingested corpus."""
        return ids.content_hash(self.config["ingestion"])[:16]

    def settings(self, base: Settings) -> Settings:
        """``base`` with every pipeline setting replaced by this release's."""
        ing = self.config["ingestion"]
        gen = {k: v for k, v in self.config["generation"].items() if k not in ("prompt",)}
        return base.model_copy(
            update={
                "chunking": ChunkingSettings(**ing["chunking"]),
                "embedding": base.embedding.model_copy(
                    update={
                        "model": ing["embedding"]["model"],
                        "sentences": ing["embedding"]["sentences"],
                    }
                ),
                "entities": EntitySettings(extractor=ing["entities"]["extractor"]),
                "retrieval": RetrievalSettings(**self.config["retrieval"]),
                "generation": GenerationSettings(**gen),
            }
        )

    def serving_overlay(self, base: Settings) -> Settings:
        """``base`` with the query-time half (retrieval, generation) of this release: what
        serving can switch to without re-indexing."""
        gen = {k: v for k, v in self.config["generation"].items() if k not in ("prompt",)}
        return base.model_copy(
            update={
                "retrieval": RetrievalSettings(**self.config["retrieval"]),
                "generation": GenerationSettings(**gen),
            }
        )


def canonical(parsed: ReleaseFile) -> dict[str, Any]:
    ing = parsed.ingestion
    chunker = chunker_config(ing.chunking)
    revision = ing.embedding.revision or installed_revision(ing.embedding.model)
    generation = parsed.generation.model_dump()
    if generation["prompt"] != "grounded-v1":
        raise InvalidInput(
            f"unknown prompt template {generation['prompt']!r} (known: grounded-v1)",
            field="generation.prompt",
        )
    generation["prompt_sha256"] = hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:16]
    return {
        "ingestion": {
            "chunking": {**ing.chunking.model_dump(), "chunker": chunker.to_dict()},
            "embedding": {
                "model": ing.embedding.model,
                "revision": revision,
                "sentences": ing.embedding.sentences,
            },
            "sparse": SparseEncoder().to_dict(),
            "entities": ing.entities.model_dump(),
        },
        "retrieval": parsed.retrieval.model_dump(),
        "generation": generation,
    }


def parse_release(data: Any, source: str = "release") -> Release:
    """A release from its YAML/JSON data; errors name the field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: a release is a mapping with at least 'name'")
    try:
        parsed = ReleaseFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"{source}: {loc}: {first['msg']}", field=loc) from exc
    return Release(name=parsed.name, description=parsed.description, config=canonical(parsed))


def packaged(name: str) -> Path | None:
    """The release file shipped with gedrag under that name (``default``, ``dense-top1``)."""
    path = RELEASES_DIR / f"{name}.yaml"
    return path if name != "gate" and path.is_file() else None


def load_release(ref: Path | str) -> Release:
    """A release from a YAML file, or one shipped with gedrag by its name."""
    path = Path(ref)
    if not path.is_file() and (shipped := packaged(str(ref))) is not None:
        path = shipped
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read release file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}") from exc
    return parse_release(data, str(path))


def from_stored(name: str, description: str, config: dict[str, Any]) -> Release:
    return Release(name=name, description=description, config=config)
