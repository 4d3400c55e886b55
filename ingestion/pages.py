"""A document's pages as pictures, and its searchable rendition (issue #16): what the console
shows and what a user downloads, derived from the original once and kept beside it in the blob
store (:meth:`stores.blobs.BlobStore.put_derived`), removed with it.

- :func:`page_count`: the pages of a PDF or an image file (a TIFF's frames); 0 for formats
  without pages of their own (Word, text, e-mail, ...).
- :func:`preview`: page ``n`` as a PNG ``SIZES[size]`` pixels wide (pypdfium2 renders PDF pages,
  Pillow decodes images under the same pixel and page limits as OCR).
- :func:`searchable`: a PDF whose scanned pages carry Tesseract's invisible text over each
  word (:func:`ingestion.ocr.searchable_page`), the pages that had a text layer kept as they
  are (pypdf assembles them); an image file becomes a PDF of its pages. The original bytes are
  never changed: it is another file.
"""

from __future__ import annotations

import io
import logging
from typing import Literal

import pypdfium2 as pdfium
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadError

from core.errors import IngestionError, InvalidInput, NotFound
from ingestion import ocr
from runtime import Runtime

log = logging.getLogger(__name__)

PDF = "application/pdf"
Size = Literal["thumb", "page"]
SIZES: dict[str, int] = {"thumb": 240, "page": 1240}  # pixels wide
SEARCHABLE = "searchable.pdf"


def is_paged(media_type: str) -> bool:
    return media_type == PDF or media_type.startswith("image/")


def page_count(data: bytes, media_type: str, *, max_pixels: int, max_pages: int) -> int:
    if media_type == PDF:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise IngestionError(f"corrupt, encrypted or unreadable PDF: {exc}") from exc
        try:
            return len(pdf)
        finally:
            pdf.close()
    if media_type.startswith("image/"):
        return ocr.image_pages(data, max_pixels=max_pixels, max_pages=max_pages)
    return 0


def _pdf_page(data: bytes, number: int, width: int) -> Image.Image:
    pdf = pdfium.PdfDocument(data)
    try:
        page = pdf[number - 1]
        try:
            page_width, _ = page.get_size()
            bitmap = page.render(scale=width / max(page_width, 1.0))
            picture: Image.Image = bitmap.to_pil().convert("RGB")
            return picture
        finally:
            page.close()
    finally:
        pdf.close()


def _image_page(data: bytes, number: int, *, max_pixels: int, max_pages: int) -> Image.Image:
    for index, image in enumerate(
        ocr.iter_images(data, max_pixels=max_pixels, max_pages=max_pages)
    ):
        if index == number - 1:
            return image.convert("RGB")
    raise NotFound(f"no page {number}")


def render_preview(
    data: bytes, media_type: str, number: int, size: Size, *, max_pixels: int, max_pages: int
) -> bytes:
    """Page ``number`` (1-based) as a PNG ``SIZES[size]`` pixels wide (never enlarged past
    the picture's own width for an image file)."""
    count = page_count(data, media_type, max_pixels=max_pixels, max_pages=max_pages)
    if count == 0:
        raise InvalidInput(f"{media_type} documents have no page images (only PDFs and images)")
    if not 1 <= number <= count:
        raise NotFound(f"no page {number}: the document has {count}")
    width = SIZES[size]
    try:
        if media_type == PDF:
            picture = _pdf_page(data, number, width)
        else:
            picture = _image_page(data, number, max_pixels=max_pixels, max_pages=max_pages)
            if picture.width > width:
                height = max(1, round(picture.height * width / picture.width))
                picture = picture.resize((width, height), Image.Resampling.LANCZOS)
    except pdfium.PdfiumError as exc:
        raise IngestionError(f"cannot render page {number}: {exc}") from exc
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=size == "thumb")
    return out.getvalue()


def render_searchable(
    data: bytes,
    media_type: str,
    *,
    languages: str,
    timeout_s: float,
    max_pixels: int,
    max_pages: int,
) -> bytes:
    """The searchable PDF of a scan or an image file (see the module's docstring)."""
    writer = PdfWriter()
    if media_type == PDF:
        try:
            reader = PdfReader(io.BytesIO(data))
            pages = list(reader.pages)
        except (PdfReadError, ValueError, OSError) as exc:
            raise IngestionError(f"corrupt, encrypted or unreadable PDF: {exc}") from exc
        if len(pages) > max_pages:
            raise IngestionError(f"too many pages: {len(pages)} > max_pages={max_pages}")
        for number, page in enumerate(pages, start=1):
            try:
                text = page.extract_text() or ""
            except (PdfReadError, ValueError, KeyError, TypeError):
                text = ""
            if not ocr.needs_ocr(text):
                writer.add_page(page)
                continue
            gray, page_dpi = ocr.render_pdf_page(data, number, max_pixels=max_pixels)
            writer.append(_one_page(gray, page_dpi, languages, timeout_s))
    elif media_type.startswith("image/"):
        for image in ocr.iter_images(data, max_pixels=max_pixels, max_pages=max_pages):
            gray, dpi = ocr.image_gray(image)
            writer.append(_one_page(gray, dpi, languages, timeout_s))
    else:
        raise InvalidInput(
            f"{media_type} documents have no searchable rendition (only scanned PDFs and images)"
        )
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _one_page(gray: ocr.Gray, dpi: int | None, languages: str, timeout_s: float) -> PdfReader:
    return PdfReader(io.BytesIO(ocr.searchable_page(gray, dpi, languages, timeout_s=timeout_s)))


class Pages:
    """Previews and renditions of a tenant's stored originals, made once and kept."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        limits = rt.settings.ocr
        self.max_pixels = limits.max_pixels
        self.max_pages = rt.settings.parsing.max_pages

    def count(self, tenant_id: str, sha256: str, media_type: str) -> int:
        if not is_paged(media_type):
            return 0
        kept = self.rt.blobs.derived(tenant_id, sha256, "pages.txt")
        if kept is not None:
            return int(kept)
        data = self.rt.blobs.read(tenant_id, sha256)
        n = page_count(data, media_type, max_pixels=self.max_pixels, max_pages=self.max_pages)
        self.rt.blobs.put_derived(tenant_id, sha256, "pages.txt", str(n).encode())
        return n

    def preview(
        self, tenant_id: str, sha256: str, media_type: str, number: int, size: Size
    ) -> bytes:
        name = f"page-{number}-{size}.png"
        kept = self.rt.blobs.derived(tenant_id, sha256, name)
        if kept is not None:
            return kept
        if not is_paged(media_type):
            raise InvalidInput(f"{media_type} documents have no page images (only PDFs and images)")
        data = self.rt.blobs.read(tenant_id, sha256)
        png = render_preview(
            data, media_type, number, size, max_pixels=self.max_pixels, max_pages=self.max_pages
        )
        self.rt.blobs.put_derived(tenant_id, sha256, name, png)
        return png

    def searchable(self, tenant_id: str, sha256: str, media_type: str, languages: str) -> bytes:
        name = f"searchable-{languages.replace('+', '.').lower()}.pdf"
        kept = self.rt.blobs.derived(tenant_id, sha256, name)
        if kept is not None:
            return kept
        data = self.rt.blobs.read(tenant_id, sha256)
        pdf = render_searchable(
            data,
            media_type,
            languages=languages,
            timeout_s=self.rt.settings.ocr.page_s,
            max_pixels=self.max_pixels,
            max_pages=self.max_pages,
        )
        self.rt.blobs.put_derived(tenant_id, sha256, name, pdf)
        log.info("searchable rendition made", extra={"bytes": len(pdf)})
        return pdf
