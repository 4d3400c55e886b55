"""A tiny randomly initialised sentence-transformers model (32 dimensions), built offline in a
second: a second embedding model for re-embedding tests; its vectors mean nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.tiny_cross_encoder import TOKENIZER_FILES
from textmodels.embedding import resolve_model_path

DIM = 32


def build(folder: Path, seed: int = 0) -> Path:
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    source = Path(resolve_model_path("all-MiniLM-L6-v2"))  # a packaged WordPiece tokenizer
    hf = folder.with_name(folder.name + "-hf")
    hf.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy(source / name, hf / name)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=DIM,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(hf)
    modules = [models.Transformer(str(hf), max_seq_length=256), models.Pooling(DIM)]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    return folder
