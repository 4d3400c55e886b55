"""Text that speaks to the model instead of the reader: invisible characters and instructions
addressed to an AI assistant.

Shared by ingestion (chunks are cleaned and flagged ``suspicious``) and retrieval (an answer never
says a sentence addressed to an assistant, whoever wrote it), hence here with the other text
tools. HTML hidden by markup is ingestion's (``ingestion.sanitize``).
"""

from __future__ import annotations

import re

# -- invisible Unicode ----------------------------------------------------------------------

# ANSI/VT escape sequences as a terminal would consume them: CSI (ESC [ ... final byte), OSC
# (ESC ] ... BEL or ESC \), and two-character escapes (ESC + one byte).
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
# Characters that render as nothing (or reorder what is shown) and carry no text of their own:
# soft hyphen, combining grapheme joiner, Arabic letter mark, Hangul fillers, Mongolian
# selectors, zero-width space/joiners, LRM/RLM, bidi embeddings and overrides (202A-202E),
# word joiner, invisible operators, bidi isolates (2066-2069), deprecated format characters,
# variation selectors (FE00-FE0F, E0100-E01EF: both can smuggle bytes), BOM, interlinear
# annotation marks, tag characters (E0000-E007F: invisible ASCII), musical formatting marks.
_INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef\U0001d173-\U0001d17a"
)
# C0 controls but tab and newline, DEL and C1 controls.
_CONTROLS = "\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f"
_STRIP = re.compile(f"[{_INVISIBLE}{_CONTROLS}]")


def strip_ansi(text: str) -> tuple[str, int]:
    """``text`` without ANSI escape sequences (colours, cursor moves), and how many there were."""
    return ANSI_ESCAPE.subn("", text)


def strip_invisible(text: str) -> tuple[str, int]:
    """``text`` without invisible and control characters, and how many were removed.

    Line breaks of every kind (CR LF, CR, VT, FF, NEL, U+2028/2029) become ``\\n``; ANSI escape
    sequences go whole (``ESC[31m`` leaves no ``[31m``); tab and newline stay."""
    text, sequences = strip_ansi(text)
    text = _LINE_BREAKS.sub("\n", text)
    text, removed = _STRIP.subn("", text)
    return text, removed + sequences


# -- text addressed to an assistant ---------------------------------------------------------

# Who a note may address. "agent" is left out ("note à l'agent instructeur"), and "model",
# "modèle" and "bot" count only after "note to": a document says them of people ("en tant
# qu'agent public" matched 4 of the 530 French fiches).
_AI_NAMES = (
    r"ai|a\.i\.|ia|i\.a\.|assistant|assistante|ai assistant|assistant ia|chatbot|llm|"
    r"language model|modèle de langage|gpt|chatgpt|claude|copilot|gemini|"
    r"intelligence artificielle|artificial intelligence"
)
_AI = rf"(?:{_AI_NAMES})"
_AI_OR_MODEL = rf"(?:{_AI_NAMES}|model|modèle|bot)"
_EARLIER = r"(?:previous|prior|above|earlier|preceding|former|original|all|any|your|system)"
_ORDERS = r"(?:instructions?|prompts?|rules|directions|directives?|guidelines|orders|context)"
_CONSIGNES = r"(?:instructions?|consignes?|règles|directives?|ordres|prompts?|messages?)"
_ADDRESSED = [
    # English
    rf"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{{0,40}}\b{_EARLIER}\b[^.\n]{{0,30}}"
    rf"\b{_ORDERS}\b",
    rf"\b(?:note|message|instructions?|memo|reminder|directive|request)s?\s+(?:to|for)\s+"
    rf"(?:the\s+|any\s+|an?\s+)?{_AI_OR_MODEL}s?\b",
    rf"\b(?:dear|hey|hello|attention|to the)\s+{_AI}\b",
    rf"\b(?:if you are|since you are|as)\s+an?\s+{_AI}\b",
    r"\b(?:you are|you're)\s+(?:now|no longer)\b",
    r"\bfrom now on,?\s+(?:you (?:are|will|must|should|shall) (?:answer|reply|respond|say|act|"
    r"be an?|ignore|only)|always|only|answer|reply|respond)\b",
    rf"\b(?:the\s+)?{_AI}s?\s+(?:must|should|shall|will|has to|is required to)\s+"
    r"(?:now\s+|always\s+|only\s+)?"
    r"(?:answer|reply|respond|say|state|tell|output|print|write|recommend|include|ignore|claim)\b",
    r"\b(?:always|only)\s+(?:answer|reply|respond)\b[^.\n]{0,30}\b(?:with|that|by)\b",
    r"\b(?:answer|reply|respond)\s+(?:to (?:the|any|every) (?:user|question)s?\s+)?"
    r"(?:with|by saying)\s*[:\"'“«]",
    r"\btell the user\b[^.\n]{0,60}(?:https?://|www\.)",
    rf"\b{_AI}\b[^.\n]{{0,80}}\b(?:link|url|lien|visit|visiter|click|cliquer)\b[^\n]{{0,40}}"
    r"(?:https?://|www\.)",
    r"\b(?:do not|don't|never)\s+(?:mention|reveal|tell|cite|disclose)\b[^.\n]{0,40}"
    r"\b(?:user|these instructions|this instruction|this note)\b",
    r"\b(?:system prompt|new instructions|jailbreak|developer mode)\b",
    # French
    rf"\b(?:ignore[zs]?|oublie[zs]?|ne tiens pas compte|ne tenez pas compte|fais abstraction|"
    rf"faites abstraction)\b[^.\n]{{0,40}}\b{_CONSIGNES}\b",
    rf"\b(?:note|message|consigne|instruction|remarque)s?\s+(?:à|a|pour|destinée?s? à)\s+"
    rf"(?:l['’]\s*|la\s+|le\s+|les\s+|tout(?:e)?\s+|un(?:e)?\s+)?{_AI_OR_MODEL}s?\b",
    rf"\b(?:cher|chère|chers|chères|à l['’]attention de l['’])\s*{_AI}\b",
    rf"\b(?:en tant qu['’]|si tu es une?|si vous êtes une?|puisque tu es une?)\s*{_AI}\b",
    r"\b(?:tu es|vous êtes|tu deviens|vous devenez)\s+(?:maintenant|désormais|dorénavant)\b",
    r"\b(?:à partir de maintenant|désormais|dorénavant),?\s+(?:tu|vous)\s+"
    r"(?:dois|devez|réponds|répondez)\b",
    r"\b(?:réponds|répondez|réponde)\s+(?:toujours\s+|uniquement\s+|seulement\s+|simplement\s+)?"
    r"(?:que|qu['’]|par\s*[:\"«]|avec\s*[:\"«])",
    rf"\b(?:l['’]\s*|le\s+|la\s+)?{_AI}\s+(?:doit|devra|doivent|devrait)\s+"
    r"(?:toujours\s+|maintenant\s+|uniquement\s+)?"
    r"(?:répondre|dire|affirmer|indiquer|recommander|écrire|ignorer|conseiller)\b",
    r"\b(?:ne (?:mentionne|mentionnez|révèle|révélez|dis|dites|cite|citez) (?:pas|jamais))\b"
    r"[^.\n]{0,40}\b(?:utilisateur|ces consignes|cette consigne|cette note)\b",
    r"\b(?:prompt système|instructions? système|mode développeur)\b",
    # Chat-template tokens have no business in a document.
    r"<\|(?:im_start|im_end|system|user|assistant|endoftext)\|>|\[/?INST\]|<<SYS>>|<</SYS>>",
]
_ADDRESS = re.compile("|".join(f"(?:{p})" for p in _ADDRESSED), re.IGNORECASE)


def addressed_to_assistant(text: str) -> bool:
    """Whether ``text`` speaks to an AI assistant: orders to ignore instructions, notes to the
    assistant, "you are now ...", "réponds que ...", chat-template tokens, in English or French.

    A document may quote such text; an answer must never say it. Tuned to stay silent on
    ordinary documents: 0 of the 530 service-public.fr fiches and 0 of the 646 SQuAD
    paragraphs of ``shared/datasets`` match (``tests/unit/test_sanitize.py``)."""
    return _ADDRESS.search(strip_invisible(text)[0]) is not None


def instruction_spans(text: str) -> list[tuple[int, int]]:
    """Where ``text`` addresses an assistant (start, end), for logs and tests."""
    return [m.span() for m in _ADDRESS.finditer(text)]
