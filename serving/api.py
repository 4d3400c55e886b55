"""The GED API under ``/v1``: every route is scoped to the tenant of the caller's API key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse

from core import media, observability
from core.domain import DocumentFilter, DocumentStatus, JobKind, JobState, Tenant
from core.errors import InvalidInput, Unauthorized
from ingestion.pages import Pages
from runtime import Runtime
from serving import auth
from serving.documents import DocumentService
from serving.schemas import (
    CollectionCreate,
    CollectionPublic,
    DocumentPublic,
    DocumentsPage,
    DocumentUpdate,
    ErrorPublic,
    JobPublic,
    JobsPage,
    UploadPublic,
    UploadsPublic,
    VersionPublic,
    VersionsPublic,
)
from serving.uploads import check_file, check_metadata, parse_metadata, parse_tags

MAX_BATCH_FILES = 100


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def service(request: Request) -> DocumentService:
    svc: DocumentService = request.app.state.service
    return svc


def api_key_of(authorization: str | None, x_api_key: str | None) -> str:
    """The key of ``Authorization: Bearer <key>`` (preferred) or ``X-API-Key``;
    :class:`Unauthorized` when neither carries one."""
    key = x_api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization header must be 'Bearer <api key>'")
        key = value.strip()
    if not key:
        raise Unauthorized("missing API key (Authorization: Bearer <key> or X-API-Key)")
    return key


async def current_tenant(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Tenant:
    """The tenant of the key, session or single sign-on token in ``Authorization: Bearer
    <token>`` or ``X-API-Key``, once :func:`serving.auth.authorize` let the caller use this
    route (its scopes, the access lists; the caller is left in ``request.state.caller``).

    Async so that the tenant it sets in the logging context reaches the endpoint (a sync
    dependency runs in a worker thread whose context is discarded); the lookup still runs in
    the thread pool."""
    caller = await auth.authorize(request, rt, api_key_of(authorization, x_api_key))
    tenant = caller.tenant
    observability.tenant.set(tenant.id)
    request.state.tenant = tenant.id  # for the access log, written outside this context
    return tenant


RT = Annotated[Runtime, Depends(runtime)]
Svc = Annotated[DocumentService, Depends(service)]
Caller = Annotated[Tenant, Depends(current_tenant)]

# Errors are JSON whatever the route's own media type (a route answering HTML or a file
# documented its errors as that type); 429: a tenant quota (GEDRAG_LIMITS__TENANT_*).
ERRORS: dict[int | str, dict[str, object]] = {
    code: {
        "model": ErrorPublic,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}},
    }
    for code in (401, 404, 409, 413, 415, 422, 429, 503)
}
router = APIRouter(prefix="/v1", responses=ERRORS)


def _max_bytes(request: Request) -> int:
    rt: Runtime = request.app.state.runtime
    return rt.settings.api.max_upload_bytes


# -- documents ----------------------------------------------------------------------------


@router.post("/documents", status_code=202, tags=["documents"])
def upload_document(
    request: Request,
    response: Response,
    svc: Svc,
    tenant: Caller,
    file: Annotated[UploadFile, File(description="The document.")],
    collection: Annotated[str, Form()] = "default",
    tags: Annotated[
        list[str] | None, Form(description='Repeat, comma-separate or a JSON list ["a", "b"].')
    ] = None,
    metadata: Annotated[str | None, Form(description="A JSON object.")] = None,
    title: Annotated[
        str | None,
        Form(
            max_length=300,
            description="Default: the document's own title (PDF or Office metadata, HTML "
            "<title>, first heading) once parsed, else the file name.",
        ),
    ] = None,
) -> UploadPublic:
    """Upload one file: 202 with the ingestion job, or 200 when identical content exists."""
    tag_list, meta = parse_tags(tags), parse_metadata(metadata)
    checked = check_file(file.file, file.filename, max_bytes=_max_bytes(request))
    (result,) = svc.upload(
        tenant, [checked], collection=collection, tags=tag_list, metadata=meta, title=title
    )
    if result.duplicate:
        response.status_code = 200
    return result


@router.post("/documents/batch", status_code=202, tags=["documents"])
def upload_documents(
    request: Request,
    response: Response,
    svc: Svc,
    tenant: Caller,
    files: Annotated[list[UploadFile], File(description="Repeat the field per file.")],
    collection: Annotated[str, Form()] = "default",
    tags: Annotated[
        list[str] | None, Form(description='Repeat, comma-separate or a JSON list ["a", "b"].')
    ] = None,
    metadata: Annotated[str | None, Form(description="A JSON object.")] = None,
) -> UploadsPublic:
    """Upload many files at once; all are checked before any is stored (all or nothing)."""
    if len(files) > MAX_BATCH_FILES:
        raise InvalidInput(f"at most {MAX_BATCH_FILES} files per batch", field="files")
    tag_list, meta = parse_tags(tags), parse_metadata(metadata)
    limit = _max_bytes(request)
    checked = [check_file(f.file, f.filename, max_bytes=limit) for f in files]
    results = svc.upload(tenant, checked, collection=collection, tags=tag_list, metadata=meta)
    if all(r.duplicate for r in results):
        response.status_code = 200
    return UploadsPublic(items=results)


@router.get("/documents", tags=["documents"])
def list_documents(
    request: Request,
    rt: RT,
    tenant: Caller,
    collection: str | None = None,
    tag: str | None = None,
    status: DocumentStatus | None = None,
    title: Annotated[str | None, Query(description="Text contained in the title.")] = None,
    metadata: Annotated[str | None, Query(description='JSON object, e.g. {"dept":"hr"}')] = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: str | None = None,
    type: Annotated[str | None, Query(description="Sorted as this document type.")] = None,
    correspondent: Annotated[
        str | None, Query(description="Issued by or sent to this correspondent.")
    ] = None,
) -> DocumentsPage:
    """Newest first; follow ``next_cursor`` for the next page. Sorting's fields filter too:
    ``field.total_ttc_gte=100``, ``field.date_lt=2024-06-01``, ``field.reference=F-12``
    (operators ``_gt``, ``_gte``, ``_lt``, ``_lte``; text fields by equality)."""
    prefix = "field."
    field_params = {
        k[len(prefix) :]: v for k, v in request.query_params.items() if k.startswith(prefix)
    }
    sorting = request.app.state.service.ingestion.sorting
    flt = DocumentFilter(
        collection=collection,
        tag=tag,
        status=status,
        metadata=parse_metadata(metadata) or None,
        title_contains=title,
        document_type=type,
        correspondent=correspondent,
        fields=sorting.conditions(tenant.id, field_params),
        readable_by=auth.caller(request).read_filter,
    )
    page = rt.catalog.documents.page(
        tenant.id, flt, cursor=cursor, limit=min(limit, rt.settings.api.page_size_max)
    )
    return DocumentsPage(
        items=[DocumentPublic.model_validate(d) for d in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/documents/{document_id}", tags=["documents"])
def get_document(rt: RT, tenant: Caller, document_id: str) -> DocumentPublic:
    return DocumentPublic.model_validate(rt.catalog.documents.get(tenant.id, document_id))


@router.patch("/documents/{document_id}", tags=["documents"])
def update_document(
    svc: Svc, tenant: Caller, document_id: str, body: DocumentUpdate
) -> DocumentPublic:
    """Replace title, tags or metadata, or move the document to another ``collection``; the
    vector payloads follow (no re-embedding)."""
    doc = svc.update(
        tenant,
        document_id,
        title=body.title,
        tags=None if body.tags is None else parse_tags(body.tags),
        metadata=None if body.metadata is None else check_metadata(body.metadata),
        collection=body.collection,
    )
    return DocumentPublic.model_validate(doc)


# DELETE /documents/{document_id} moves the document to the trash: serving.records_api.


@router.get("/documents/{document_id}/versions", tags=["documents"])
def list_versions(rt: RT, tenant: Caller, document_id: str) -> VersionsPublic:
    """Every version of the document, oldest first, with its status and failure cause."""
    doc = rt.catalog.documents.get(tenant.id, document_id)
    return VersionsPublic(items=[VersionPublic.model_validate(v) for v in doc.versions])


@router.post("/documents/{document_id}/versions", status_code=202, tags=["documents"])
def upload_version(
    request: Request,
    response: Response,
    svc: Svc,
    tenant: Caller,
    document_id: str,
    file: Annotated[UploadFile, File()],
) -> UploadPublic:
    """Upload a new version; 200 without a job when it equals the current version."""
    checked = check_file(file.file, file.filename, max_bytes=_max_bytes(request))
    result = svc.new_version(tenant, document_id, checked)
    if result.duplicate:
        response.status_code = 200
    return result


def _download(
    rt: Runtime, tenant: Tenant, document_id: str, number: int | None
) -> StreamingResponse:
    """The original, opened before answering: a document deleted meanwhile answers 404 (never
    a 500 from a file gone between the lookup and the send), and an open file stays readable
    while a delete removes it."""
    version = rt.catalog.versions.get(tenant.id, document_id, number)
    f = rt.blobs.open(tenant.id, version.sha256)
    size = os.fstat(f.fileno()).st_size

    def chunks() -> Iterator[bytes]:
        with f:
            while block := f.read(DOWNLOAD_CHUNK):
                yield block

    quoted = quote(version.filename)
    disposition = (
        f'attachment; filename="{version.filename}"'
        if quoted == version.filename
        else f"attachment; filename*=utf-8''{quoted}"
    )
    return StreamingResponse(
        chunks(),
        media_type=version.media_type,
        headers={
            "Content-Length": str(size),
            "Content-Disposition": disposition,
            "X-Content-SHA256": version.sha256,
            "X-Document-Version": str(version.number),
        },
    )


# The original's bytes, in its own media type (any supported one).
DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The original bytes, in the document's media type.",
        "content": {media_type: {} for media_type in media.SUPPORTED},
    }
}
DOWNLOAD_CHUNK = 1024 * 1024


@router.get(
    "/documents/{document_id}/content",
    tags=["documents"],
    response_class=StreamingResponse,
    responses=DOWNLOAD_RESPONSES,
)
def download_current(
    rt: RT,
    tenant: Caller,
    document_id: str,
    rendition: Annotated[
        Literal["original", "searchable"],
        Query(description="searchable: a scan's PDF with its text layer (made on first request)"),
    ] = "original",
) -> Response:
    """The original bytes of the current version (the default), or its searchable rendition:
    a PDF whose scanned pages carry their OCR'd text (pages that had text are kept as they
    are; an image becomes a PDF). The original never changes."""
    if rendition == "searchable":
        return _searchable(rt, tenant, document_id, None)
    return _download(rt, tenant, document_id, None)


def _searchable(rt: Runtime, tenant: Tenant, document_id: str, number: int | None) -> Response:
    v = rt.catalog.versions.get(tenant.id, document_id, number)
    pdf = Pages(rt).searchable(tenant.id, v.sha256, v.media_type, rt.settings.ocr.languages)
    stem = v.filename.rsplit(".", 1)[0] if "." in v.filename else v.filename
    name = f"{stem}.searchable.pdf"
    quoted = quote(name)
    disposition = (
        f'attachment; filename="{name}"'
        if quoted == name
        else f"attachment; filename*=utf-8''{quoted}"
    )
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": disposition,
            "X-Document-Version": str(v.number),
            "X-Rendition": "searchable",
        },
    )


@router.get(
    "/documents/{document_id}/versions/{number}/content",
    tags=["documents"],
    response_class=StreamingResponse,
    responses=DOWNLOAD_RESPONSES,
)
def download_version(rt: RT, tenant: Caller, document_id: str, number: int) -> StreamingResponse:
    """The original bytes of any version."""
    return _download(rt, tenant, document_id, number)


# -- jobs ---------------------------------------------------------------------------------


@router.get("/jobs", tags=["jobs"])
def list_jobs(
    request: Request,
    rt: RT,
    tenant: Caller,
    state: JobState | None = None,
    kind: JobKind | None = None,
    document_id: str | None = None,
    limit: Annotated[int, Query(ge=1)] = 50,
    cursor: str | None = None,
) -> JobsPage:
    """The tenant's ingestion and deletion jobs, newest first; follow ``next_cursor``."""
    page = rt.catalog.jobs.page(
        tenant.id,
        state=state,
        kind=kind,
        document_id=document_id,
        cursor=cursor,
        limit=min(limit, rt.settings.api.page_size_max),
    )
    hidden = set(auth.hidden_for(request))  # jobs of documents the caller may not read
    return JobsPage(
        items=[JobPublic.model_validate(j) for j in page.items if j.document_id not in hidden],
        next_cursor=page.next_cursor,
    )


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(rt: RT, tenant: Caller, job_id: str) -> JobPublic:
    return JobPublic.model_validate(rt.catalog.jobs.get(tenant.id, job_id))


# -- collections --------------------------------------------------------------------------


@router.post("/collections", status_code=201, tags=["collections"])
def create_collection(rt: RT, tenant: Caller, body: CollectionCreate) -> CollectionPublic:
    coll = rt.catalog.collections.create(tenant.id, body.name, body.description)
    return CollectionPublic.model_validate(coll)


@router.get("/collections", tags=["collections"])
def list_collections(request: Request, rt: RT, tenant: Caller) -> list[CollectionPublic]:
    """The collections, and counts of the documents, the caller may read."""
    found = rt.catalog.collections.of_tenant(tenant.id, auth.caller(request).read_filter)
    return [CollectionPublic.model_validate(c) for c in found]


# {name:path}: a collection named before names were checked may hold a '/', sent encoded (%2F)
# and decoded before routing.
@router.delete("/collections/{name:path}", status_code=204, tags=["collections"])
def delete_collection(rt: RT, tenant: Caller, name: str) -> Response:
    """Delete an empty collection (409 while it holds documents)."""
    rt.catalog.collections.delete(tenant.id, name)
    return Response(status_code=204)
