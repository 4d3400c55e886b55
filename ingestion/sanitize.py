"""What a document hides from its reader is not indexed; what it says to an assistant is flagged.

A prompt injection hides in what a person reading the document does not see (HTML hidden by
markup or inline style, invisible or control Unicode) or speaks to the model that reads the
passages ("ignore previous instructions", "note to the AI assistant", "réponds que ..."). Three
defences, all pure functions:

* :func:`strip_hidden_html` removes elements a browser would not show (``hidden``,
  ``aria-hidden="true"``, ``display:none``, ``visibility:hidden``, ``font-size:0``, ``opacity:0``,
  text coloured like its background, off-screen or zero-size boxes, ``<template>``, comments);
* :func:`strip_invisible` removes invisible and control characters (Unicode tag characters
  U+E0000-E007F, zero-width characters, bidi overrides and isolates, variation selectors, C0/C1
  controls but tab and newline, ANSI escape sequences);
* :func:`addressed_to_assistant` says whether a text addresses an AI assistant in French or
  English: chunks are flagged ``suspicious`` at ingestion and answers never say such a sentence.

The last two live in :mod:`textmodels.injection` (retrieval uses them too: it may not import
ingestion) and are re-exported here.

The original file is stored as uploaded; only the indexed text is cleaned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import lxml.html
from lxml import etree

from textmodels.injection import (
    ANSI_ESCAPE,
    addressed_to_assistant,
    instruction_spans,
    strip_ansi,
    strip_invisible,
)

__all__ = [
    "ANSI_ESCAPE",
    "HiddenText",
    "addressed_to_assistant",
    "instruction_spans",
    "strip_ansi",
    "strip_hidden_html",
    "strip_invisible",
]

# -- hidden HTML ----------------------------------------------------------------------------

# Content a browser never shows that the parser would read (scripts and styles it skips).
_NEVER_SHOWN = frozenset({"template", "noembed"})
_ZERO = re.compile(r"^-?0*\.?0+(px|pt|em|rem|%|vh|vw|ex|ch)?$")
# Off-screen: absolutely positioned 1,000 px or more away, or indented out of the box.
_FAR = re.compile(r"^-\d{4,}(\.\d+)?(px|pt)?$|^-\d{3,}(\.\d+)?(em|rem)$")
_NAMED = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "red": (255, 0, 0),
    "lime": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "silver": (192, 192, 192),
    "gray": (128, 128, 128),
    "grey": (128, 128, 128),
    "snow": (255, 250, 250),
    "ivory": (255, 255, 240),
    "whitesmoke": (245, 245, 245),
    "ghostwhite": (248, 248, 255),
}
_WHITE = (255, 255, 255)
_RGB = re.compile(r"^rgba?\((\d{1,3})[,\s]+(\d{1,3})[,\s]+(\d{1,3})(?:[,\s/]+([\d.]+%?))?\)$")


@dataclass(frozen=True)
class HiddenText:
    """What :func:`strip_hidden_html` removed: elements and their characters of text."""

    elements: int = 0
    chars: int = 0


def strip_hidden_html(markup: str) -> tuple[str, HiddenText]:
    """The HTML without the elements a reader would not see, and what was removed.

    Decided from markup and inline styles only (no style sheets are applied): ``hidden``,
    ``aria-hidden="true"``, ``<input type=hidden>``, ``display:none``,
    ``visibility:hidden|collapse``, ``font-size:0``, ``opacity:0``, a text colour equal to the
    background in effect (white on the default white page, black on a black box, or
    ``transparent``), zero width or height with ``overflow:hidden``, boxes positioned 1,000 px
    off-screen, ``<template>`` and comments. An element's tail text (what follows it) stays.
    """
    if not markup.strip():
        return markup, HiddenText()
    try:
        root = lxml.html.document_fromstring(markup)
    except (etree.ParserError, ValueError):
        return markup, HiddenText()
    removed: list[etree._Element] = []
    _walk(root, _WHITE, removed)
    if not removed:
        return markup, HiddenText()
    chars = 0
    for element in removed:
        if isinstance(element, etree._Comment):
            chars += len(element.text or "")
        else:
            chars += len(element.text_content())
        _drop(element)
    cleaned = lxml.html.tostring(root, encoding="unicode", doctype="<!DOCTYPE html>")
    return cleaned, HiddenText(elements=len(removed), chars=chars)


def _walk(
    element: etree._Element, background: tuple[int, ...], removed: list[etree._Element]
) -> None:
    """Collect hidden elements depth-first, never descending into one (an explicit stack: a
    page nested thousands of levels deep must not exhaust Python's recursion)."""
    stack: list[tuple[etree._Element, tuple[int, ...]]] = [(element, background)]
    while stack:
        node, inherited = stack.pop()
        if isinstance(node, etree._Comment):
            removed.append(node)
            continue
        if not isinstance(node.tag, str):
            continue  # processing instructions, entities
        style = _declarations(node.get("style", ""))
        own_background = _color(style.get("background-color") or _background(style))
        effective = own_background or inherited
        if node is not element and _hidden(node, style, effective):
            removed.append(node)
            continue
        stack.extend((child, effective) for child in reversed(node))


def _hidden(node: etree._Element, style: dict[str, str], background: tuple[int, ...]) -> bool:
    tag = node.tag.lower() if isinstance(node.tag, str) else ""
    if tag in _NEVER_SHOWN:
        return True
    if node.get("hidden") is not None or node.get("aria-hidden", "").strip().lower() == "true":
        return True
    if tag == "input" and node.get("type", "").lower() == "hidden":
        return True
    if style.get("display") == "none" or style.get("visibility") in ("hidden", "collapse"):
        return True
    if _ZERO.match(style.get("font-size", "x")) or _ZERO.match(style.get("opacity", "x")):
        return True
    boxed = style.get("overflow") in ("hidden", "clip")
    if boxed and (_ZERO.match(style.get("width", "x")) or _ZERO.match(style.get("height", "x"))):
        return True
    if style.get("position") in ("absolute", "fixed") and any(
        _FAR.match(style.get(side, "x")) for side in ("left", "top", "right")
    ):
        return True
    if _FAR.match(style.get("text-indent", "x")):
        return True
    color_value = style.get("color") or (node.get("color") if tag == "font" else None)
    if color_value is not None:
        if color_value.strip().lower() == "transparent":
            return True
        color = _color(color_value)
        if color is not None and color == background:
            return True
    return False


def _declarations(style: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for declaration in style.split(";"):
        name, colon, value = declaration.partition(":")
        if colon:
            value = value.replace("!important", "").strip().lower()
            found[name.strip().lower()] = " ".join(value.split())
    return found


def _background(style: dict[str, str]) -> str | None:
    """The colour of a ``background`` shorthand, when it names one (its first colour word)."""
    value = style.get("background")
    if not value:
        return None
    words: list[str] = re.findall(r"#[0-9a-f]{3,8}|rgba?\([^)]*\)|[a-z]+", value)
    return next((word for word in words if _color(word) is not None), None)


def _color(value: str | None) -> tuple[int, ...] | None:
    """``#fff``, ``#ffffff``, ``rgb(255, 255, 255)``, or a common colour name, as RGB."""
    if not value:
        return None
    value = value.strip().lower()
    if value in _NAMED:
        return _NAMED[value]
    if value.startswith("#") and len(value) in (4, 5, 7, 9):
        digits = value[1:]
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits)
        try:
            return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            return None
    match = _RGB.match(value.replace(" ", ""))
    if match:
        alpha = match.group(4)
        if alpha is not None and alpha.rstrip("%") in ("0", "0.0"):
            return None  # a fully transparent colour is handled as "transparent" elsewhere
        return tuple(min(255, int(match.group(i))) for i in (1, 2, 3))
    return None


def _drop(element: etree._Element) -> None:
    """Remove the element but keep the text that follows it (its tail)."""
    parent = element.getparent()
    if parent is None:
        return
    tail = element.tail
    previous = element.getprevious()
    parent.remove(element)
    if tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
