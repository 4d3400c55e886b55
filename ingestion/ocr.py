"""OCR of scanned pages and images with Tesseract 5: pure functions, no storage.

:func:`ocr_image` reads one page image, :func:`ocr_pdf_pages` renders the given pages of a PDF
(pypdfium2) and reads each, :func:`load_images` decodes an image file (PNG, JPEG, TIFF with
several pages, WebP, HEIC) under a pixel and a page limit, and :func:`needs_ocr` says whether a
PDF page's own text layer is missing or garbage. Every failure is an :class:`IngestionError`
whose message says what to do (install Tesseract, a smaller image, ...).

Tesseract runs as a subprocess (``tesseract stdin stdout ... tsv``) with a timeout, one OpenMP
thread, the page passed as an uncompressed PGM on stdin: no temporary files, no wrapper package
(pytesseract would write both to temporary files and adds nothing the 40 lines here need), and a
hung or slow page is killed at ``timeout_s``. The TSV output gives words, boxes and confidences.

What each step does (gains measured on ged_docs' dev half, the scans with an odd source id;
whole-set figures in ``bench/ocr.py``'s docstring):

1. *Orientation* (90/180/270): a projection-profile test flags pages whose text runs vertically
   (0.1 s); only those, and pages whose first reading has a mean word confidence under 60, go to
   Tesseract's orientation detection (``--psm 0``, ~1 s, so not run on every page).
2. *Deskew*: the angle maximising the row-profile sharpness of a 1600-px binary thumbnail,
   searched over +-5 degrees to 0.05 degrees (0.1 s); the page is rotated by it.
3. *Phone photos*: a page quadrilateral covering <= 92 % of the picture (the desk shows around
   it) is warped flat at its own scale and binarised by Tesseract's Sauvola
   (``thresholding_method=2``) instead of its global Otsu, which blackens unevenly lit areas.
4. *Resolution*: a scanned PDF page is read from its own image at its own resolution (not
   re-rendered), other PDF pages are rendered at 300 dpi, and pages under 250 dpi are upscaled
   to 300 dpi (bicubic).
5. *Reading order*: Tesseract's lines are regrouped into visual rows (lines whose vertical extents
   overlap by half are one row, read left to right), so a sender block and a recipient block
   printed side by side, or a table row, read across as printed rather than block after block.
6. *Noise*: lines of one or two words with a mean confidence under 60 are dropped (stamps,
   handwriting and speckle produce them; 21 % of such words occur in the true text on the dev
   half, against 99 % of words on ordinary lines), and so are dashed table rules read as text.
7. *Dropped regions*: text-like ink that no word covers (Tesseract's layout sometimes takes a
   table for a picture) is read again as a block (``--psm 6``), confident words only.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import re
import shutil
import subprocess
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt
import pypdfium2 as pdfium
from pi_heif import register_heif_opener
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

from core.errors import IngestionError

logger = logging.getLogger(__name__)

Gray = npt.NDArray[np.uint8]
ReadingOrder = Literal["rows", "blocks"]

DEFAULT_LANGUAGES = "fra+eng"
INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-fra tesseract-ocr-eng"
# 40 MP: an A4 page at 600 dpi is 35 MP; Pillow's own bomb guard errors at 179 MP.
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_MAX_PAGES = 2000
# 120 s per page: a 300-dpi A4 page reads in 1-2 s on one core; 60x that is a runaway.
DEFAULT_TIMEOUT_S = 120.0
RENDER_DPI = 300
# Pages under 250 dpi are upscaled to 300: on the 200-dpi dev scans, mean CER 2.43 -> 2.29 %.
_UPSCALE_BELOW_DPI = 250
# Resolutions outside this range in image metadata are defaults (72, 96) or nonsense.
_PLAUSIBLE_DPI = (100, 1200)
# Rows whose text runs vertically score under 0.25 of the transposed profile (rotated dev pages:
# <= 0.17; upright pages >= 0.4).
_SIDEWAYS_RATIO = 0.25
_LOW_CONFIDENCE = 60.0
_SKEW_LIMIT_DEG = 5.0
# A page outline covering at most 92 % of a picture is a photographed page (ged_docs photos:
# 79-85 %; scans with a dark scanner-lid shadow along one edge: >= 96 %).
_PHOTO_MAX_AREA = 0.92
_PHOTO_MIN_AREA = 0.30
# Under 16 px a side no line of text fits (Tesseract wants letters >= 10 px tall).
_MIN_SIDE_PX = 16
_LANGUAGES_RE = re.compile(r"^[A-Za-z_]{3,}(\+[A-Za-z_]{3,})*$")


@dataclass(frozen=True, slots=True)
class PageText:
    """The text read from one page image.

    ``confidence`` is the mean of Tesseract's word confidences (0-100) over the words kept;
    ``rotation`` the clockwise quarter turn applied (0, 90, 180 or 270); ``skew`` the small angle
    corrected, in degrees (counter-clockwise positive); ``photo`` whether the page was found
    inside a photograph and flattened; ``dropped_words`` how many words were discarded as noise;
    ``timings`` the seconds spent per stage (``load``, ``preprocess``, ``osd``, ``tesseract``,
    ``layout``), which sum to ``seconds``.
    """

    text: str
    confidence: float
    rotation: int
    skew: float
    seconds: float
    words: int = 0
    photo: bool = False
    dropped_words: int = 0
    timings: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Word:
    left: int
    top: int
    width: int
    height: int
    conf: float
    text: str


@dataclass(slots=True)
class _Line:
    words: list[_Word]

    @property
    def top(self) -> int:
        return min(w.top for w in self.words)

    @property
    def bottom(self) -> int:
        return max(w.top + w.height for w in self.words)

    @property
    def conf(self) -> float:
        return sum(w.conf for w in self.words) / len(self.words)


class _Clock:
    """Seconds per stage, for :attr:`PageText.timings`."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.stages[stage] = self.stages.get(stage, 0.0) + now - self._last
        self._last = now


# --- Tesseract ------------------------------------------------------------------------------


def tesseract_binary() -> str:
    """The path of the ``tesseract`` executable; :class:`IngestionError` saying how to install
    it when it is not on ``PATH``."""
    path = shutil.which("tesseract")
    if path is None:
        raise IngestionError(f"OCR unavailable: Tesseract is not installed ({INSTALL_HINT})")
    return path


@lru_cache(maxsize=4)
def _installed_languages(binary: str) -> frozenset[str]:
    out = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [binary, "--list-langs"], capture_output=True, timeout=30, check=False
    )
    lines = out.stdout.decode("utf-8", "replace").splitlines()
    return frozenset(line.strip() for line in lines[1:] if line.strip())


def check_languages(languages: str) -> str:
    """Validate a Tesseract language spec (``"fra+eng"``) against the installed models.

    Returns the binary path. :class:`IngestionError` for a malformed spec, a missing Tesseract or
    a language whose model is not installed (the message names the Debian package).
    """
    if not _LANGUAGES_RE.match(languages):
        raise IngestionError(f"invalid OCR languages {languages!r}: expected codes like 'fra+eng'")
    binary = tesseract_binary()
    missing = [lang for lang in languages.split("+") if lang not in _installed_languages(binary)]
    if missing:
        packages = " ".join(f"tesseract-ocr-{m.lower().replace('_', '-')}" for m in missing)
        raise IngestionError(
            f"OCR language not installed: {', '.join(missing)} (apt-get install {packages})"
        )
    return binary


def _pgm(gray: Gray) -> bytes:
    ok, buf = cv2.imencode(".pgm", gray)
    if not ok:  # pragma: no cover - encoding a uint8 array cannot fail
        raise IngestionError("could not encode the page image for OCR")
    return bytes(buf.tobytes())


def _run_tesseract(
    binary: str, image: bytes, args: Sequence[str], timeout_s: float, *, what: str
) -> str:
    return _run_tesseract_bytes(binary, image, args, timeout_s, what=what).decode(
        "utf-8", "replace"
    )


def _run_tesseract_bytes(
    binary: str, image: bytes, args: Sequence[str], timeout_s: float, *, what: str
) -> bytes:
    # One OpenMP thread: on 2 cores, two single-threaded pages at once beat one two-threaded page.
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(  # noqa: S603 - argv built here from validated values, no shell
            [binary, "stdin", "stdout", *args],
            input=image,
            capture_output=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise IngestionError(f"OCR timed out: {what} took longer than {timeout_s:g} s") from exc
    except OSError as exc:
        raise IngestionError(f"OCR unavailable: cannot run Tesseract ({INSTALL_HINT})") from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise IngestionError(f"OCR failed: Tesseract exited with {done.returncode}: {detail[0]}")
    return bytes(done.stdout)


def _read_words(
    binary: str,
    gray: Gray,
    dpi: int | None,
    languages: str,
    timeout_s: float,
    *,
    sauvola: bool,
    psm: int = 3,
) -> list[_Line]:
    args = ["-l", languages, "--psm", str(psm), "--oem", "1"]
    if dpi:
        args += ["--dpi", str(dpi)]
    if sauvola:
        args += ["-c", "thresholding_method=2"]
    tsv = _run_tesseract(binary, _pgm(gray), [*args, "tsv"], timeout_s, what="a page")
    return _parse_tsv(tsv)


def _parse_tsv(tsv: str) -> list[_Line]:
    """Words of Tesseract's TSV (level 5 rows), grouped by (block, paragraph, line)."""
    lines: dict[tuple[int, int, int], list[_Word]] = {}
    for row in tsv.splitlines()[1:]:
        cols = row.split("\t")
        if len(cols) < 12 or cols[0] != "5":
            continue
        text = unicodedata.normalize("NFC", cols[11].strip())
        if not text:
            continue
        left, top, width, height = (int(c) for c in cols[6:10])
        word = _Word(left, top, width, height, float(cols[10]), text)
        lines.setdefault((int(cols[2]), int(cols[3]), int(cols[4])), []).append(word)
    return [_Line(words) for _, words in sorted(lines.items())]


def _osd(binary: str, gray: Gray, dpi: int | None, timeout_s: float) -> tuple[int, float]:
    """Tesseract's orientation detection: (clockwise rotation to apply, confidence); (0, 0.0)
    when it finds too little text or the ``osd`` model is missing."""
    args = ["--psm", "0", "-l", "osd"] + (["--dpi", str(dpi)] if dpi else [])
    try:
        out = _run_tesseract(binary, _pgm(gray), args, timeout_s, what="orientation detection")
    except IngestionError as exc:
        if "timed out" in exc.detail:
            raise
        logger.warning("orientation detection failed", extra={"cause": exc.detail})
        return 0, 0.0
    rotate = re.search(r"Rotate: (\d+)", out)
    conf = re.search(r"Orientation confidence: ([\d.]+)", out)
    if rotate is None or conf is None:
        return 0, 0.0
    return int(rotate.group(1)) % 360, float(conf.group(1))


# --- image geometry -------------------------------------------------------------------------


def _shrink(gray: Gray, scale: float) -> Gray:
    h, w = gray.shape
    size = (max(1, int(w * scale)), max(1, int(h * scale)))
    return np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _analysis_binary(gray: Gray) -> Gray:
    """Ink mask of a <= 1600-px thumbnail, 4 % margins cut (scanner-lid shadows sit there)."""
    h, w = gray.shape
    scale = min(1.0, 1600 / max(h, w))
    small = _shrink(gray, scale) if scale < 1 else gray
    sh, sw = small.shape
    small = small[int(sh * 0.04) : sh - int(sh * 0.04), int(sw * 0.04) : sw - int(sw * 0.04)]
    _, ink = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY_INV + cv2.THRESH_OTSU)
    return np.asarray(ink, dtype=np.uint8)


def _profile_sharpness(ink: Gray, angle: float) -> float:
    """Sum of squared differences between neighbouring row sums after rotating by ``angle``:
    largest when text lines are horizontal (rows alternate between ink and gaps)."""
    h, w = ink.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    turned = cv2.warpAffine(ink, matrix, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    rows = turned.sum(axis=1, dtype=np.float64)
    return float(np.sum(np.diff(rows) ** 2))


def _skew_and_sideways(gray: Gray) -> tuple[float, float]:
    """(skew angle in degrees, horizontal/vertical profile ratio); a ratio under
    :data:`_SIDEWAYS_RATIO` means the text probably runs vertically."""
    ink = _analysis_binary(gray)
    if not ink.any():
        return 0.0, 1.0
    coarse = np.arange(-_SKEW_LIMIT_DEG, _SKEW_LIMIT_DEG + 1e-9, 0.25)
    best = max(coarse, key=lambda a: _profile_sharpness(ink, float(a)))
    fine = np.arange(best - 0.25, best + 0.25 + 1e-9, 0.05)
    angle = float(max(fine, key=lambda a: _profile_sharpness(ink, float(a))))
    across = _profile_sharpness(ink, angle)
    transposed = np.ascontiguousarray(ink.T)
    down = max(_profile_sharpness(transposed, float(a)) for a in np.arange(-3.0, 3.01, 0.5))
    return round(angle, 2), across / (down + 1e-9)


def _rotate_quarter(gray: Gray, clockwise: int) -> Gray:
    turns = {90: 3, 180: 2, 270: 1}.get(clockwise % 360, 0)  # np.rot90 turns counter-clockwise
    return np.ascontiguousarray(np.rot90(gray, turns))


def _rotate_fine(gray: Gray, angle: float) -> Gray:
    if abs(angle) < 0.1:  # 0.1 degree moves a 2,500-px line by 4 px: not worth a resample
        return gray
    h, w = gray.shape
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    out = cv2.warpAffine(gray, matrix, (w, h), flags=cv2.INTER_LINEAR, borderValue=255)
    return np.asarray(out, dtype=np.uint8)


def _page_quad(gray: Gray) -> npt.NDArray[np.float32] | None:
    """Corners (tl, tr, br, bl) of a light page on a darker background, or None when the
    picture is not a photographed page (no outline, or one covering nearly all of it)."""
    h, w = gray.shape
    scale = min(1.0, 800 / max(h, w))
    small = _shrink(gray, scale) if scale < 1 else gray
    blurred = cv2.GaussianBlur(small, (7, 7), 0)
    _, light = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    light = cv2.morphologyEx(light, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    contours, _ = cv2.findContours(light, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    outline = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(outline) / (small.shape[0] * small.shape[1])
    if not _PHOTO_MIN_AREA <= area <= _PHOTO_MAX_AREA:
        return None
    poly = cv2.approxPolyDP(outline, 0.02 * cv2.arcLength(outline, True), True)
    points = poly.reshape(-1, 2) if len(poly) == 4 else cv2.boxPoints(cv2.minAreaRect(outline))
    points = np.asarray(points, dtype=np.float32).reshape(4, 2)
    sums, diffs = points.sum(axis=1), np.diff(points, axis=1).ravel()
    quad = np.array(
        [
            points[np.argmin(sums)],
            points[np.argmin(diffs)],
            points[np.argmax(sums)],
            points[np.argmax(diffs)],
        ],
        dtype=np.float32,
    )
    return np.asarray(quad / scale, dtype=np.float32)


def _warp(gray: Gray, quad: npt.NDArray[np.float32]) -> Gray:
    """The page inside ``quad`` flattened to a rectangle at its own scale (upscaling the
    photographed page by 1.5 or 2 raised the dev photos' mean CER from 1.6 % to 12-16 %)."""
    tl, tr, br, bl = quad
    width = max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl))
    height = max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr))
    target = np.array(
        [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], dtype=np.float32
    )
    matrix = cv2.getPerspectiveTransform(quad, target)
    out = cv2.warpPerspective(
        gray,
        matrix,
        (int(width), int(height)),
        flags=cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(out, dtype=np.uint8)


# --- regions the page layout dropped -------------------------------------------------------

Box = tuple[int, int, int, int]


def _unread_regions(gray: Gray, lines: list[_Line]) -> list[Box]:
    """Boxes (x0, y0, x1, y1) of text-like ink that no word of ``lines`` covers.

    Tesseract's page layout sometimes classes a whole table as a picture and returns nothing for
    it (gd-0277's 18 transaction rows when its page was rendered through pdfium: CER 57 %, 30 %
    once the regions found here are read; nothing changed on the dev half). Ink is measured in
    units of the median word height ``u``: characters are ink blobs 0.3-2 u tall and at most
    3 u wide, left once word boxes and ruling lines (4 u long) are removed; a region is a cluster
    of at least 8 such characters.
    """
    heights = sorted(w.height for ln in lines for w in ln.words)
    if not heights:
        return []
    unit = max(4.0, float(heights[len(heights) // 2]))
    scale = min(1.0, 8.0 / unit)  # work where a word is ~8 px tall
    small = _shrink(gray, scale) if scale < 1 else gray
    u = unit * scale
    block = int(4 * u) | 1
    ink = cv2.adaptiveThreshold(
        small, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY_INV, max(block, 3), 20
    )
    pad = int(0.5 * u)
    for ln in lines:
        for w in ln.words:
            x0, y0 = int(w.left * scale) - pad, int(w.top * scale) - pad
            x1, y1 = int((w.left + w.width) * scale) + pad, int((w.top + w.height) * scale) + pad
            ink[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 0
    long = max(3, int(4 * u))
    for kernel in ((long, 1), (1, long)):
        rules = cv2.morphologyEx(
            ink, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_RECT, kernel)
        )
        ink = cv2.subtract(ink, rules)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
    tall, wide = stats[:, cv2.CC_STAT_HEIGHT], stats[:, cv2.CC_STAT_WIDTH]
    is_char = (tall >= 0.3 * u) & (tall <= 2 * u) & (wide <= 3 * u)
    is_char[0] = False
    chars = np.where(is_char[labels], 255, 0).astype(np.uint8)
    joined = cv2.dilate(
        chars, cv2.getStructuringElement(cv2.MORPH_RECT, (int(2 * u) | 1, int(u) | 1))
    )
    n, _, region_stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    boxes: list[Box] = []
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in region_stats[i, :4])
        inside = np.unique(labels[y : y + bh, x : x + bw][chars[y : y + bh, x : x + bw] > 0])
        if len(inside) < 8:
            continue
        margin = 0.5 * u
        boxes.append(
            (
                max(0, int((x - margin) / scale)),
                max(0, int((y - margin) / scale)),
                min(gray.shape[1], int((x + bw + margin) / scale)),
                min(gray.shape[0], int((y + bh + margin) / scale)),
            )
        )
    return boxes


def _read_region(
    binary: str,
    gray: Gray,
    box: Box,
    dpi: int | None,
    languages: str,
    timeout_s: float,
    photo: bool,
) -> list[_Line]:
    """Read one dropped region as a single block of text (``--psm 6``), keeping only confident
    words (>= 50) on confident lines (mean >= 70): a second look at a stamp or a signature must
    not add noise."""
    x0, y0, x1, y1 = box
    crop = np.ascontiguousarray(gray[y0:y1, x0:x1])
    out = []
    for line in _read_words(binary, crop, dpi, languages, timeout_s, sauvola=photo, psm=6):
        words = [
            _Word(w.left + x0, w.top + y0, w.width, w.height, w.conf, w.text)
            for w in line.words
            if w.conf >= 50
        ]
        if words and sum(w.conf for w in words) / len(words) >= 70:
            out.append(_Line(words))
    return out


# --- reading order --------------------------------------------------------------------------


_RULE_CHARS = frozenset("—~=‘“©")


def _is_rule_artifact(text: str) -> bool:
    """A dashed table rule read as text ('——————ss—s—s—‘“‘—sSs~s~s'): 4+ characters, at least
    30 % of them dashes, tildes, equals signs or curly quotes. Underscores, hyphens and bars
    are left alone: forms print '___/___/____' and footers 'a | b'."""
    rule = sum(ch in _RULE_CHARS for ch in text)
    return len(text) >= 4 and rule >= 2 and rule >= 0.3 * len(text)


def _drop_noise(lines: list[_Line]) -> tuple[list[_Line], int]:
    """Lines of at most two words with a mean confidence under 60, and rule artifacts."""
    kept = []
    for line in lines:
        if len(line.words) <= 2 and line.conf < _LOW_CONFIDENCE:
            continue
        words = [w for w in line.words if not _is_rule_artifact(w.text)]
        if words:
            kept.append(_Line(words))
    return kept, sum(len(ln.words) for ln in lines) - sum(len(ln.words) for ln in kept)


def _rows(lines: list[_Line]) -> list[list[_Word]]:
    """Lines regrouped into visual rows: a line joins one of the last three rows when it
    overlaps that row's first line vertically by half the smaller height."""
    rows: list[tuple[_Line, list[_Word]]] = []
    for line in sorted(lines, key=lambda ln: ln.top + ln.bottom):
        height = line.bottom - line.top
        target = None
        for anchor, words in rows[-3:]:
            overlap = min(anchor.bottom, line.bottom) - max(anchor.top, line.top)
            if overlap >= 0.5 * min(height, anchor.bottom - anchor.top):
                target = words
        if target is None:
            rows.append((line, list(line.words)))
        else:
            target.extend(line.words)
    return [sorted(words, key=lambda w: w.left) for _, words in rows]


def _text(lines: list[_Line], order: ReadingOrder) -> str:
    groups = _rows(lines) if order == "rows" else [ln.words for ln in lines]
    return "\n".join(" ".join(w.text for w in words) for words in groups)


# --- loading --------------------------------------------------------------------------------


def _plausible_dpi(value: object) -> int | None:
    first = value[0] if isinstance(value, tuple) and value else value
    if not isinstance(first, int | float):
        return None
    dpi = round(float(first))
    return dpi if _PLAUSIBLE_DPI[0] <= dpi <= _PLAUSIBLE_DPI[1] else None


def _declared_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG or GIF header (Pillow refuses a 0x0 file without saying)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    return None


def _open_image(data: bytes) -> Image.Image:
    if not data:
        raise IngestionError("empty image file")
    register_heif_opener()
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise IngestionError(f"image refused as a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        size = _declared_size(data)
        if size is not None and 0 in size:
            raise IngestionError(f"empty image: {size[0]}x{size[1]} pixels") from exc
        raise IngestionError(f"corrupt or unreadable image: {exc}") from exc


def iter_images(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_pages: int = DEFAULT_MAX_PAGES
) -> Iterator[Image.Image]:
    """Decode the pages (frames) of an image file one at a time, upright (EXIF orientation).

    Every frame's size and the frame count are checked before the first page is decoded, so a
    bad file fails before any work is done. Pillow's decompression-bomb guard stays on.
    :class:`IngestionError` for bytes Pillow cannot read, a 0x0 image, an image over
    ``max_pixels`` (or Pillow's own limit), more than ``max_pages`` frames, and a truncated or
    corrupt frame (raised when that frame is reached).
    """
    image = _open_image(data)
    try:
        dpi = _plausible_dpi(image.info.get("dpi"))
        count = _check_frames(image, max_pixels, max_pages)
        for index in range(count):
            try:
                image.seek(index)
                frame = image.copy()  # decodes this frame only
            except Image.DecompressionBombError as exc:
                raise IngestionError(f"image refused as a decompression bomb: {exc}") from exc
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise IngestionError(
                    f"truncated or corrupt image (page {index + 1}): {exc}"
                ) from exc
            upright = ImageOps.exif_transpose(frame)
            if dpi and _plausible_dpi(upright.info.get("dpi")) is None:
                upright.info["dpi"] = (dpi, dpi)
            yield upright
    finally:
        image.close()


def _check_frames(image: Image.Image, max_pixels: int, max_pages: int) -> int:
    count = 0
    try:
        for frame in ImageSequence.Iterator(image):  # seeks frame headers, decodes nothing
            count += 1
            if count > max_pages:
                raise IngestionError(f"too many pages: more than max_pages={max_pages} images")
            width, height = frame.size
            if width == 0 or height == 0:
                raise IngestionError(f"empty image: {width}x{height} pixels")
            if width * height > max_pixels:
                raise IngestionError(
                    f"image refused as a decompression bomb: {width}x{height} pixels"
                    f" > max_pixels={max_pixels}"
                )
    except IngestionError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise IngestionError(f"truncated or corrupt image: {exc}") from exc
    return count


def image_pages(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_pages: int = DEFAULT_MAX_PAGES
) -> int:
    """How many pages (frames) an image file holds, each checked as :func:`iter_images` does,
    without decoding any."""
    image = _open_image(data)
    try:
        return _check_frames(image, max_pixels, max_pages)
    finally:
        image.close()


def load_images(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_pages: int = DEFAULT_MAX_PAGES
) -> list[Image.Image]:
    """All pages of an image file at once (:func:`iter_images`; small files and tests)."""
    return list(iter_images(data, max_pixels=max_pixels, max_pages=max_pages))


def _to_gray(image: Image.Image) -> tuple[Gray, int | None]:
    dpi = _plausible_dpi(image.info.get("dpi"))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels are paper: composite on white (Tesseract reads alpha as black).
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # 16-bit and float scans: convert("L") would clip everything over 255 to white.
        wide = np.asarray(image, dtype=np.float64)
        low, high = float(wide.min()), float(wide.max())
        gray = ((wide - low) * (255.0 / max(high - low, 1e-9))).astype(np.uint8)
    else:
        gray = np.asarray(image.convert("L"), dtype=np.uint8)
    return np.ascontiguousarray(gray), dpi


# --- public API -----------------------------------------------------------------------------


def ocr_image(
    image: Image.Image | Gray,
    languages: str = DEFAULT_LANGUAGES,
    *,
    dpi: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    reading_order: ReadingOrder = "rows",
    require_text: bool = True,
) -> PageText:
    """Read one page image (a Pillow image or a greyscale array).

    ``dpi`` overrides the image's own resolution metadata (used to upscale pages under 250 dpi
    and as Tesseract's hint). ``reading_order="rows"`` reads side-by-side blocks and table rows
    across; ``"blocks"`` keeps Tesseract's block-by-block order. :class:`IngestionError` when
    Tesseract or a language is missing, the page times out, or (``require_text``) nothing
    legible is found ("no text recognised").
    """
    clock = _Clock()
    binary = check_languages(languages)
    if isinstance(image, Image.Image):
        gray, meta_dpi = _to_gray(image)
    else:
        gray, meta_dpi = np.ascontiguousarray(image, dtype=np.uint8), None
    if gray.ndim != 2 or gray.shape[0] == 0 or gray.shape[1] == 0:
        raise IngestionError(f"empty image: {'x'.join(str(s) for s in gray.shape)} pixels")
    dpi = dpi or meta_dpi
    clock.lap("load")
    return _read_page(binary, gray, dpi, languages, timeout_s, reading_order, require_text, clock)


def _read_page(
    binary: str,
    gray: Gray,
    dpi: int | None,
    languages: str,
    timeout_s: float,
    order: ReadingOrder,
    require_text: bool,
    clock: _Clock,
) -> PageText:
    if min(gray.shape) < _MIN_SIDE_PX:
        if require_text:
            raise IngestionError(
                f"no text recognised: the image is {gray.shape[1]}x{gray.shape[0]} pixels"
            )
        return PageText("", 0.0, 0, 0.0, round(sum(clock.stages.values()), 4), timings=clock.stages)
    quad = _page_quad(gray)
    photo = quad is not None
    if quad is not None:
        gray, dpi = _warp(gray, quad), None  # the photo's scale is unknown: Tesseract estimates
    if dpi and dpi < _UPSCALE_BELOW_DPI:
        # Never past DEFAULT_MAX_PIXELS: a huge image tagged 100 dpi would grow ninefold.
        factor = min(RENDER_DPI / dpi, (DEFAULT_MAX_PIXELS / gray.size) ** 0.5)
        if factor > 1.05:
            gray = np.asarray(
                cv2.resize(gray, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC),
                dtype=np.uint8,
            )
            dpi = round(dpi * factor)
    angle, ratio = _skew_and_sideways(gray)
    clock.lap("preprocess")
    rotation, osd_done = 0, False
    if ratio < _SIDEWAYS_RATIO:
        rotation, _ = _osd(binary, gray, dpi, timeout_s)
        osd_done = True
        clock.lap("osd")
        if rotation:
            gray = _rotate_quarter(gray, rotation)
            angle, _ = _skew_and_sideways(gray)
    gray = _rotate_fine(gray, angle)
    clock.lap("preprocess")
    lines = _read_words(binary, gray, dpi, languages, timeout_s, sauvola=photo)
    clock.lap("tesseract")
    conf = _mean_conf(lines)
    if not osd_done and lines and conf < _LOW_CONFIDENCE:
        # Upside-down or sideways text that the profile test missed reads at ~35-45.
        turn, _ = _osd(binary, gray, dpi, timeout_s)
        clock.lap("osd")
        if turn:
            turned = _rotate_quarter(gray, turn)
            turned_angle, _ = _skew_and_sideways(turned)
            turned = _rotate_fine(turned, turned_angle)
            clock.lap("preprocess")
            again = _read_words(binary, turned, dpi, languages, timeout_s, sauvola=photo)
            clock.lap("tesseract")
            if _mean_conf(again) > conf:
                lines, rotation, angle, gray = again, (rotation + turn) % 360, turned_angle, turned
    regions = _unread_regions(gray, lines)
    clock.lap("layout")
    for region in regions:
        lines += _read_region(binary, gray, region, dpi, languages, timeout_s, photo)
    if regions:
        clock.lap("tesseract")
    kept, dropped = _drop_noise(lines)
    text = _text(kept, order)
    words = sum(len(ln.words) for ln in kept)
    clock.lap("layout")
    if require_text and not words:
        raise IngestionError("no text recognised: the image holds no legible text")
    return PageText(
        text=text,
        confidence=round(_mean_conf(kept), 2),
        rotation=rotation,
        skew=angle,
        seconds=round(sum(clock.stages.values()), 4),
        words=words,
        photo=photo,
        dropped_words=dropped,
        timings=dict(clock.stages),
    )


def _mean_conf(lines: Iterable[_Line]) -> float:
    confs = [w.conf for ln in lines for w in ln.words]
    return sum(confs) / len(confs) if confs else 0.0


def ocr_images(
    data: bytes,
    languages: str = DEFAULT_LANGUAGES,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pages: int = DEFAULT_MAX_PAGES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    reading_order: ReadingOrder = "rows",
) -> list[PageText]:
    """Read every page of an image file (:func:`load_images`, then :func:`ocr_image`).

    A blank page among others reads as empty text; :class:`IngestionError` ("no text
    recognised") only when no page has any.
    """
    images = iter_images(data, max_pixels=max_pixels, max_pages=max_pages)
    first = next(images, None)  # every frame's size and the frame count are checked here
    if first is None:
        raise IngestionError("corrupt or unreadable image: no image in the file")
    check_languages(languages)
    pages = [
        ocr_image(
            image,
            languages,
            timeout_s=timeout_s,
            reading_order=reading_order,
            require_text=False,
        )
        for image in itertools.chain([first], images)
    ]
    if not any(page.words for page in pages):
        raise IngestionError("no text recognised: the image holds no legible text")
    return pages


def ocr_pdf_pages(
    pdf_bytes: bytes,
    page_numbers: Sequence[int],
    dpi: int = RENDER_DPI,
    languages: str = DEFAULT_LANGUAGES,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pages: int = DEFAULT_MAX_PAGES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    reading_order: ReadingOrder = "rows",
) -> list[PageText]:
    """Render the given 1-based pages of a PDF at ``dpi`` and read each (blank pages give
    empty text). A page larger than ``max_pixels`` at ``dpi`` is rendered at the resolution
    that fits. :class:`IngestionError` for an unreadable or encrypted PDF, a page number out of
    range, more than ``max_pages`` pages, or a missing Tesseract.
    """
    if len(page_numbers) > max_pages:
        raise IngestionError(f"too many pages: {len(page_numbers)} > max_pages={max_pages}")
    try:
        pdf = pdfium.PdfDocument(pdf_bytes)
    except pdfium.PdfiumError as exc:
        raise IngestionError(f"corrupt, encrypted or unreadable PDF: {exc}") from exc
    try:
        count = len(pdf)
        bad = [n for n in page_numbers if not 1 <= n <= count]
        if bad:
            raise IngestionError(f"page {bad[0]} out of range: the PDF has {count} pages")
        binary = check_languages(languages)
        pages = []
        for number in page_numbers:
            clock = _Clock()
            gray, page_dpi = _render(pdf, number, dpi, max_pixels)
            clock.lap("load")
            pages.append(
                _read_page(
                    binary, gray, page_dpi, languages, timeout_s, reading_order, False, clock
                )
            )
        return pages
    finally:
        pdf.close()


def _render(pdf: pdfium.PdfDocument, number: int, dpi: int, max_pixels: int) -> tuple[Gray, int]:
    """Page ``number`` as a greyscale array and its resolution.

    A scanned page (one image covering >= 80 % of it) gives that image at its own resolution,
    turned by the page's /Rotate: rendering a 300-dpi bilevel scan at 300 dpi or a 200-dpi scan
    at 300 dpi through pdfium's smoothing raised the dev half's mean CER from 1.71 % to 2.79 %
    (one bank statement lost its whole table: Tesseract's layout took it for a picture). Other
    pages are rendered at ``dpi``, or at the lower resolution that keeps them in ``max_pixels``.
    """
    page = pdf[number - 1]
    try:
        width_pt, height_pt = page.get_size()
        area_pt = max(1e-6, width_pt * height_pt)
        scan = _scan_image(page, area_pt, max_pixels)
        if scan is not None:
            image, image_dpi = scan
            bitmap = image.get_bitmap(render=True, scale_to_original=True)
            gray = np.asarray(bitmap.to_pil().convert("L"), dtype=np.uint8)
            turn = page.get_rotation() % 360
            if turn:
                gray = _rotate_quarter(gray, turn)
            page_dpi = image_dpi
        else:
            area_in = area_pt / 72**2
            page_dpi = dpi
            if area_in * page_dpi**2 > max_pixels:
                page_dpi = max(36, int((max_pixels / area_in) ** 0.5))
            bitmap = page.render(scale=page_dpi / 72, grayscale=True)
            gray = np.array(bitmap.to_numpy(), dtype=np.uint8)
    except pdfium.PdfiumError as exc:
        raise IngestionError(f"cannot render PDF page {number}: {exc}") from exc
    finally:
        page.close()
    if gray.ndim == 3:
        gray = gray[:, :, 0]
    if gray.size == 0:
        raise IngestionError(f"PDF page {number} is empty: 0x0 points")
    return np.ascontiguousarray(gray), page_dpi


def _scan_image(
    page: pdfium.PdfPage, area_pt: float, max_pixels: int
) -> tuple[pdfium.PdfImage, int] | None:
    """The image that makes up a scanned page and its resolution, or None."""
    best: tuple[float, pdfium.PdfImage, int] | None = None
    for obj in page.get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE]):
        assert isinstance(obj, pdfium.PdfImage)
        left, bottom, right, top = obj.get_bounds()
        width_px, height_px = obj.get_px_size()
        shown = (right - left) * (top - bottom)
        if width_px * height_px == 0 or shown <= 0 or width_px * height_px > max_pixels:
            continue
        # The larger of the two: a scan placed turned by 90 degrees swaps width and height.
        dpi = round(72 * max(width_px, height_px) / max(right - left, top - bottom))
        if best is None or shown > best[0]:
            best = (shown, obj, dpi)
    if best is None or best[0] < 0.8 * area_pt:
        return None
    return best[1], min(max(best[2], 72), 1200)


# --- searchable renditions ------------------------------------------------------------------


def searchable_page(
    gray: Gray,
    dpi: int | None,
    languages: str = DEFAULT_LANGUAGES,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bytes:
    """A one-page PDF: the page image (JPEG) with Tesseract's invisible text laid over each
    word where it is printed, so a PDF reader finds and selects the scan's words. The image is
    the page as scanned (not deskewed), so the words sit where the reader sees them."""
    binary = check_languages(languages)
    if gray.ndim != 2 or gray.size == 0:
        raise IngestionError("empty page image")
    ok, buf = cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:  # pragma: no cover - encoding a uint8 array cannot fail
        raise IngestionError("could not encode the page image")
    args = ["-l", languages, "--dpi", str(dpi or RENDER_DPI), "pdf"]
    return _run_tesseract_bytes(binary, bytes(buf.tobytes()), args, timeout_s, what="a page")


def render_pdf_page(
    pdf_bytes: bytes, number: int, *, dpi: int = RENDER_DPI, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[Gray, int]:
    """Page ``number`` (1-based) of a PDF as OCR sees it: a scanned page's own image at its own
    resolution, another page rendered at ``dpi`` (within ``max_pixels``)."""
    try:
        pdf = pdfium.PdfDocument(pdf_bytes)
    except pdfium.PdfiumError as exc:
        raise IngestionError(f"corrupt, encrypted or unreadable PDF: {exc}") from exc
    try:
        if not 1 <= number <= len(pdf):
            raise IngestionError(f"page {number} out of range: the PDF has {len(pdf)} pages")
        return _render(pdf, number, dpi, max_pixels)
    finally:
        pdf.close()


def image_gray(image: Image.Image) -> tuple[Gray, int | None]:
    """A decoded page image (:func:`iter_images`) as the greyscale array OCR reads, and its
    resolution when the file states a plausible one."""
    return _to_gray(image)


# --- text layer check -----------------------------------------------------------------------

_CID = re.compile(r"\(cid:\d+\)")
# A page with fewer visible characters than this has no usable text layer (a scanned page
# often carries only a stamp or page number as text).
_MIN_CHARS = 20


def needs_ocr(page_text: str) -> bool:
    """Whether a PDF page's extracted text is missing or garbage and the page must be OCR'd.

    True when, after removing whitespace, fewer than 20 characters remain; when pdfminer's
    ``(cid:NN)`` placeholders for unmapped glyphs make up 10 % of the text or more; or when
    under half of the characters are letters or digits (replacement characters, private-use
    glyphs and symbol soup from fonts without a Unicode map).
    """
    cids = _CID.findall(page_text)
    cid_chars = sum(len(c) for c in cids)
    visible = "".join(page_text.split())
    if len(visible) < _MIN_CHARS:
        return True
    if cid_chars >= 0.1 * len(visible):
        return True
    rest = _CID.sub("", visible)
    if not rest:
        return True
    alnum = sum(1 for ch in rest if ch.isalnum() and unicodedata.category(ch) != "Co")
    return alnum < 0.5 * len(rest)
