"""A document's pages as pictures and its searchable rendition over HTTP (issue #16).

``GET /v1/documents/{id}/pages`` says how many pages a version has; ``GET
/v1/documents/{id}/pages/{n}?size=thumb|page`` answers page ``n`` as a PNG (240 or 1,240 pixels
wide); ``GET /v1/documents/{id}/content?rendition=searchable`` (in :mod:`serving.api`) answers a
scan's PDF with its text layer. Each is made on first request and kept beside the original
(:class:`ingestion.pages.Pages`), under the same tenant and access checks as a download.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from core.domain import Tenant
from ingestion.pages import Pages, Size
from runtime import Runtime
from serving.api import ERRORS, current_tenant, runtime

router = APIRouter(prefix="/v1", responses=ERRORS, tags=["documents"])
RT = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Tenant, Depends(current_tenant)]
KEEP = "private, max-age=86400"  # a version's pages never change


class PagesPublic(BaseModel):
    version: int
    media_type: str
    pages: int = Field(description="0: this format has no page images (only PDFs and images).")


@router.get("/documents/{document_id}/pages")
def document_pages(
    rt: RT,
    tenant: Caller,
    document_id: str,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> PagesPublic:
    """How many page images the version (default: the current one) has."""
    v = rt.catalog.versions.get(tenant.id, document_id, version)
    n = Pages(rt).count(tenant.id, v.sha256, v.media_type)
    return PagesPublic(version=v.number, media_type=v.media_type, pages=n)


@router.get(
    "/documents/{document_id}/pages/{number}",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}, "description": "The page as a PNG."}},
)
def page_image(
    rt: RT,
    tenant: Caller,
    document_id: str,
    number: Annotated[int, Path(ge=1, le=2**31 - 1)],
    size: Size = "page",
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Page ``number`` of the version (default: the current one): ``thumb`` 240 pixels wide,
    ``page`` 1,240. 404 past the last page; 422 for a format without pages."""
    v = rt.catalog.versions.get(tenant.id, document_id, version)
    png = Pages(rt).preview(tenant.id, v.sha256, v.media_type, number, size)
    return Response(png, media_type="image/png", headers={"Cache-Control": KEEP})
