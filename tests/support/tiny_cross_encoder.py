"""A tiny randomly initialised BERT cross-encoder, built offline in a second: it exercises the
reranking code path (CrossEncoder loading, scoring, reordering); its scores mean nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from textmodels.embedding import resolve_model_path

TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def build(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    source = Path(resolve_model_path("all-MiniLM-L6-v2"))  # a packaged WordPiece tokenizer
    folder.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, folder / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder
