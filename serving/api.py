"""The GED API under ``/v1``: every route is scoped to the tenant of the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from core import observability
from core.domain import DocumentFilter, DocumentStatus, Tenant
from core.errors import InvalidInput, Unauthorized
from runtime import Runtime
from serving.documents import DocumentService
from serving.schemas import (
    CollectionCreate,
    CollectionPublic,
    DocumentPublic,
    DocumentsPage,
    DocumentUpdate,
    ErrorPublic,
    JobPublic,
    UploadPublic,
    UploadsPublic,
)
from serving.uploads import check_file, check_metadata, parse_metadata, parse_tags

MAX_BATCH_FILES = 100


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def service(request: Request) -> DocumentService:
    svc: DocumentService = request.app.state.service
    return svc


async def current_tenant(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Tenant:
    """The tenant of the key in ``Authorization: Bearer <key>`` or ``X-API-Key``.

    Async so that the tenant it sets in the logging context reaches the endpoint (a sync
    dependency runs in a worker thread whose context is discarded); the lookup still runs in
    the thread pool."""
    key = x_api_key
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization header must be 'Bearer <api key>'")
        key = value.strip()
    if not key:
        raise Unauthorized("missing API key (Authorization: Bearer <key> or X-API-Key)")
    tenant = await run_in_threadpool(rt.catalog.tenants.authenticate, key)
    observability.tenant.set(tenant.id)
    request.state.tenant = tenant.id  # for the access log, written outside this context
    return tenant


RT = Annotated[Runtime, Depends(runtime)]
Svc = Annotated[DocumentService, Depends(service)]
Caller = Annotated[Tenant, Depends(current_tenant)]

ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorPublic} for code in (401, 404, 409, 413, 415, 422, 503)
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
    tags: Annotated[list[str] | None, Form(description="Repeat or comma-separate.")] = None,
    metadata: Annotated[str | None, Form(description="A JSON object.")] = None,
    title: Annotated[str | None, Form(max_length=300)] = None,
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
    tags: Annotated[list[str] | None, Form()] = None,
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
) -> DocumentsPage:
    """Newest first; follow ``next_cursor`` for the next page."""
    flt = DocumentFilter(
        collection=collection,
        tag=tag,
        status=status,
        metadata=parse_metadata(metadata) or None,
        title_contains=title,
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
    doc = svc.update(
        tenant,
        document_id,
        title=body.title,
        tags=None if body.tags is None else parse_tags(body.tags),
        metadata=None if body.metadata is None else check_metadata(body.metadata),
    )
    return DocumentPublic.model_validate(doc)


@router.delete("/documents/{document_id}", status_code=202, tags=["documents"])
def delete_document(svc: Svc, tenant: Caller, document_id: str) -> JobPublic:
    """Queue removal from every store; the returned job reports when it is done."""
    return JobPublic.model_validate(svc.delete(tenant, document_id))


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


def _download(rt: Runtime, tenant: Tenant, document_id: str, number: int | None) -> FileResponse:
    version = rt.catalog.versions.get(tenant.id, document_id, number)
    path = rt.blobs.path(tenant.id, version.sha256)
    return FileResponse(
        path,
        media_type=version.media_type,
        filename=version.filename,
        headers={"X-Content-SHA256": version.sha256, "X-Document-Version": str(version.number)},
    )


@router.get("/documents/{document_id}/content", tags=["documents"], response_class=FileResponse)
def download_current(rt: RT, tenant: Caller, document_id: str) -> FileResponse:
    """The original bytes of the current version."""
    return _download(rt, tenant, document_id, None)


@router.get(
    "/documents/{document_id}/versions/{number}/content",
    tags=["documents"],
    response_class=FileResponse,
)
def download_version(rt: RT, tenant: Caller, document_id: str, number: int) -> FileResponse:
    """The original bytes of any version."""
    return _download(rt, tenant, document_id, number)


# -- jobs ---------------------------------------------------------------------------------


@router.get("/jobs/{job_id}", tags=["jobs"])
def get_job(rt: RT, tenant: Caller, job_id: str) -> JobPublic:
    return JobPublic.model_validate(rt.catalog.jobs.get(tenant.id, job_id))


# -- collections --------------------------------------------------------------------------


@router.post("/collections", status_code=201, tags=["collections"])
def create_collection(rt: RT, tenant: Caller, body: CollectionCreate) -> CollectionPublic:
    coll = rt.catalog.collections.create(tenant.id, body.name, body.description)
    return CollectionPublic.model_validate(coll)


@router.get("/collections", tags=["collections"])
def list_collections(rt: RT, tenant: Caller) -> list[CollectionPublic]:
    return [CollectionPublic.model_validate(c) for c in rt.catalog.collections.of_tenant(tenant.id)]


@router.delete("/collections/{name}", status_code=204, tags=["collections"])
def delete_collection(rt: RT, tenant: Caller, name: str) -> Response:
    """Delete an empty collection (409 while it holds documents)."""
    rt.catalog.collections.delete(tenant.id, name)
    return Response(status_code=204)
