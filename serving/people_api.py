"""People and permissions over HTTP (issue #19): sign-in (password, single sign-on), users,
groups, API keys, access lists on collections and documents, and the audit trail.

Sign-in answers a session token (``gds_...``) used like an API key (``Authorization: Bearer``)
until it expires (``GEDRAG_AUTH__SESSION_HOURS``) or signs out. Single sign-on is the
authorization code flow with PKCE: ``/v1/auth/oidc/login`` sends the browser to the provider,
whose answer comes back to ``/v1/auth/oidc/callback``, which opens a session and hands it to
the console in the page's fragment (``/#sso=<token>``: never sent to a server, never in a log).
Users, groups and the audit trail are administrators'; a list's managers change it. Every
change and every refusal is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool
from starlette.concurrency import run_in_threadpool

from core import ids
from core.access import (
    AccessList,
    Caller,
    Permission,
    ResourceKind,
    Role,
    Scope,
    User,
    UserKind,
    allowed,
    audited_as,
    scopes_of,
)
from core.domain import ApiKeyInfo, Tenant
from core.errors import Forbidden, GedragError, NotFound, Unauthorized
from ingestion.access import AccessService
from runtime import Runtime
from serving import auth
from serving.api import ERRORS, current_tenant, runtime
from serving.schemas import IsoDateTime, Public
from stores.catalog.audit import AuditQuery, export_lines

router = APIRouter(prefix="/v1", responses={**ERRORS, 403: ERRORS[409]})
RT = Annotated[Runtime, Depends(runtime)]


async def current_caller(
    request: Request, tenant: Annotated[Tenant, Depends(current_tenant)]
) -> Caller:
    return auth.caller(request)


Who = Annotated[Caller, Depends(current_caller)]


def access_service(request: Request) -> AccessService:
    rt: Runtime = request.app.state.runtime
    return AccessService(rt)


Access = Annotated[AccessService, Depends(access_service)]


# -- schemas ------------------------------------------------------------------------------


class Strict(BaseModel):
    """Request bodies: unknown keys are refused (and booleans are StrictBool: ``0`` is no
    ``false``)."""

    model_config = ConfigDict(extra="forbid")


class UserPublic(Public):
    id: str
    username: str
    display_name: str
    email: str
    kind: UserKind
    roles: list[Role] = Field(description="Effective: granted here and by single sign-on.")
    granted_roles: list[Role]
    sso_roles: list[Role]
    has_password: bool
    sso: bool
    disabled: bool
    created_at: datetime
    last_sign_in_at: datetime | None


class UserCreate(Strict):
    username: str = Field(min_length=1, max_length=100)
    display_name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=320)
    roles: list[Role] = Field(default_factory=lambda: [Role.READER])
    kind: UserKind = UserKind.USER
    password: str | None = Field(default=None, description="Local sign-in; none: keys only.")


class UserUpdate(Strict):
    display_name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    roles: list[Role] | None = None
    disabled: StrictBool | None = Field(
        default=None, description="A disabled user's keys and sessions are refused at once."
    )


class PasswordSet(Strict):
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(Strict):
    current: str = Field(min_length=1, max_length=1024)
    password: str = Field(min_length=1, max_length=1024)


class GroupPublic(Public):
    id: str
    name: str
    description: str
    origin: str = Field(description="local, or sso: created from the provider's groups claim.")
    created_at: datetime
    member_ids: list[str]


class GroupCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)


class MembersSet(Strict):
    user_ids: list[str] = Field(max_length=10_000)


class KeyPublic(Public):
    id: str
    user_id: str | None
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class KeyCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(description="read, write, admin, promote: at most the user's.")
    user_id: str | None = Field(
        default=None, description="Another user's (a service account's): administrators."
    )
    expires_at: IsoDateTime | None = None


class KeyCreated(BaseModel):
    key: str = Field(description="Shown once; only its hash is kept.")
    info: KeyPublic


class LoginRequest(Strict):
    tenant: str = Field(min_length=1, max_length=100)
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class SessionPublic(BaseModel):
    token: str = Field(description="Send as Authorization: Bearer <token>.")
    expires_at: datetime
    user: UserPublic


class MePublic(BaseModel):
    tenant: str
    user: UserPublic
    scopes: list[str]
    group_ids: list[str]
    via: str


class ProvidersPublic(BaseModel):
    password: bool
    sso: bool
    sso_tenant: str | None


class EntryModel(Strict):
    principal: str = Field(
        description="everyone, user:<id or username>, group:<id or name>.", max_length=300
    )
    permission: Literal["read", "write", "manage"]


class AccessPublic(BaseModel):
    kind: ResourceKind
    resource_id: str
    inherit: bool
    entries: list[EntryModel]
    effective: list[EntryModel] = Field(description="What decides: inherited and own entries.")
    updated_at: datetime | None
    updated_by: str
    caller_may: Literal["none", "read", "write", "manage"]


class AccessSet(Strict):
    entries: list[EntryModel] = Field(
        max_length=500, description="Empty on a collection: open to everyone."
    )
    inherit: StrictBool = Field(
        default=True, description="Documents: add to the collection's list, or replace it."
    )


class AuditPublic(Public):
    id: str
    seq: int
    at: datetime
    actor: str
    via: str
    source: str
    action: str
    target: str
    outcome: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class ChainBreakPublic(Public):
    tenant_id: str
    seq: int
    entry_id: str
    reason: str


class VerifyPublic(Public):
    ok: bool
    entries: int
    breaks: list[ChainBreakPublic]


def _user(u: User) -> UserPublic:
    return UserPublic(
        id=u.id,
        username=u.username,
        display_name=u.display_name,
        email=u.email,
        kind=u.kind,
        roles=sorted(u.roles),
        granted_roles=sorted(u.granted_roles),
        sso_roles=sorted(u.sso_roles),
        has_password=u.has_password,
        sso=u.sso,
        disabled=u.disabled,
        created_at=u.created_at,
        last_sign_in_at=u.last_sign_in_at,
    )


def _key(k: ApiKeyInfo) -> KeyPublic:
    return KeyPublic.model_validate(k)


def _audit(rt: Runtime, who: Caller, action: str, target: str, **detail: Any) -> None:
    rt.catalog.audit.append(who.tenant.id, who.actor, action, target, "done", detail)


def _refuse(rt: Runtime, who: Caller, action: str, target: str, exc: GedragError) -> GedragError:
    auth.refused(rt, who.tenant.id, who.actor, action, target, exc)
    return exc


# -- sign-in ------------------------------------------------------------------------------


@router.get("/auth/providers", tags=["auth"])
def providers(rt: RT) -> ProvidersPublic:
    """How one may sign in (the console asks before anyone has)."""
    sso = bool(rt.settings.auth.oidc_issuer)
    return ProvidersPublic(password=True, sso=sso, sso_tenant=auth.sso_tenant(rt) if sso else None)


def _session(rt: Runtime, user: User, method: str, source: str) -> SessionPublic:
    ttl = timedelta(hours=rt.settings.auth.session_hours)
    token, expires = rt.catalog.people.create_session(user, method=method, source=source, ttl=ttl)
    return SessionPublic(token=token, expires_at=expires, user=_user(user))


@router.post("/auth/login", tags=["auth"])
def login(request: Request, rt: RT, body: LoginRequest) -> SessionPublic:
    """A session for a local user's password (401 with one message whatever was wrong)."""
    source = auth.source_of(request)
    try:
        tenant = rt.catalog.tenants.get(body.tenant)
        user = rt.catalog.people.check_password(tenant.id, body.username, body.password)
    except (NotFound, Unauthorized) as exc:
        found = rt.catalog.tenants.all()
        tenant_id = next((t.id for t in found if t.name == body.tenant), "")
        refusal = Unauthorized(
            exc.detail if "disabled" in exc.detail else "unknown user or wrong password"
        )
        with audited_as(source, "password"):
            auth.refused(rt, tenant_id, f"user:{body.username[:100]}", "auth.sign_in", "", refusal)
        raise refusal from None
    with audited_as(source, "password"):
        rt.catalog.audit.append(
            tenant.id,
            f"{user.kind.value}:{user.username}",
            "auth.sign_in",
            user.id,
            "done",
            {"method": "password"},
        )
    return _session(rt, user, "password", source)


def _redirect_uri(request: Request, rt: Runtime) -> str:
    return rt.settings.auth.oidc_redirect_url or str(request.url_for("oidc_callback"))


@router.get("/auth/oidc/login", tags=["auth"], status_code=302, response_class=RedirectResponse)
def oidc_login(request: Request, rt: RT) -> RedirectResponse:
    """Send the browser to the identity provider (single sign-on)."""
    oidc = auth.oidc_client(request.app.state, rt.settings)
    if oidc is None:
        raise NotFound("single sign-on is not configured (GEDRAG_AUTH__OIDC_ISSUER)")
    tenant = rt.catalog.tenants.get(auth.sso_tenant(rt))
    redirect_uri = _redirect_uri(request, rt)
    state, nonce, verifier = rt.catalog.people.start_login(tenant.id, redirect_uri=redirect_uri)
    url = oidc.authorization_url(
        state=state, nonce=nonce, code_verifier=verifier, redirect_uri=redirect_uri
    )
    return RedirectResponse(url, status_code=302)


@router.get(
    "/auth/oidc/callback",
    tags=["auth"],
    name="oidc_callback",
    status_code=302,
    response_class=RedirectResponse,
)
def oidc_callback(
    request: Request,
    rt: RT,
    state: str = Query(max_length=200),
    code: str | None = Query(default=None, max_length=2000),
    error: str | None = Query(default=None, max_length=200),
    error_description: str | None = Query(default=None, max_length=1000),
) -> RedirectResponse:
    """The provider's answer: a session, handed to the console in the page's fragment."""
    source = auth.source_of(request)
    oidc = auth.oidc_client(request.app.state, rt.settings)
    if oidc is None:
        raise NotFound("single sign-on is not configured (GEDRAG_AUTH__OIDC_ISSUER)")
    try:
        pending = rt.catalog.people.take_login(state)
    except Unauthorized as exc:  # unknown, replayed or late
        with audited_as(source, "sso"):
            auth.refused(rt, "", "anonymous", "auth.sign_in", "", exc)
        raise
    try:
        if error or not code:
            raise Unauthorized(f"the identity provider refused: {error_description or error}")
        who = oidc.exchange(
            code=code,
            code_verifier=pending.code_verifier,
            redirect_uri=pending.redirect_uri,
            nonce=pending.nonce,
        )
        user = rt.catalog.people.sso_user(pending.tenant_id, **who.profile())
    except Unauthorized as exc:
        with audited_as(source, "sso"):
            auth.refused(rt, pending.tenant_id, "anonymous", "auth.sign_in", "", exc)
        return RedirectResponse(f"/#sso-error={quote(exc.detail)}", status_code=302)
    with audited_as(source, "sso"):
        rt.catalog.audit.append(
            pending.tenant_id,
            f"user:{user.username}",
            "auth.sign_in",
            user.id,
            "done",
            {"method": "sso", "groups": list(who.groups), "roles": sorted(who.roles)},
        )
    session = _session(rt, user, "sso", source)
    return RedirectResponse(f"/#sso={session.token}", status_code=302)


@router.get("/auth/me", tags=["auth"])
def me(rt: RT, who: Who) -> MePublic:
    return MePublic(
        tenant=who.tenant.name,
        user=_user(rt.catalog.people.user(who.tenant.id, who.user_id)),
        scopes=sorted(s.value for s in who.scopes),
        group_ids=list(who.group_ids),
        via=who.via,
    )


@router.post("/auth/logout", tags=["auth"], status_code=204)
def logout(rt: RT, who: Who) -> Response:
    """End the calling session (a key is revoked with DELETE /v1/keys/{id})."""
    if who.session_id is not None:
        rt.catalog.people.revoke_session(who.session_id)
        _audit(rt, who, "auth.sign_out", who.user_id)
    return Response(status_code=204)


@router.post("/auth/password", tags=["auth"], status_code=204)
def change_password(rt: RT, who: Who, body: PasswordChange) -> Response:
    """Change one's own password (the current one is asked again)."""
    rt.catalog.people.check_password(who.tenant.id, who.username, body.current)
    rt.catalog.people.set_password(who.tenant.id, who.user_id, body.password)
    _audit(rt, who, "user.password", who.user_id)
    return Response(status_code=204)


# -- users and groups (administrators) ------------------------------------------------------


@router.get("/users", tags=["people"])
def list_users(rt: RT, who: Who) -> list[UserPublic]:
    return [_user(u) for u in rt.catalog.people.users(who.tenant.id)]


@router.post("/users", tags=["people"], status_code=201)
def create_user(rt: RT, who: Who, body: UserCreate) -> UserPublic:
    user = rt.catalog.people.create_user(
        who.tenant.id,
        body.username,
        roles=body.roles,
        display_name=body.display_name,
        email=body.email,
        kind=body.kind,
        password=body.password,
    )
    _audit(rt, who, "user.create", user.id, username=user.username, roles=sorted(user.roles))
    return _user(user)


@router.get("/users/{user_id}", tags=["people"])
def get_user(rt: RT, who: Who, user_id: str) -> UserPublic:
    return _user(rt.catalog.people.user(who.tenant.id, user_id))


@router.patch("/users/{user_id}", tags=["people"])
def update_user(rt: RT, who: Who, user_id: str, body: UserUpdate) -> UserPublic:
    """Roles, names, enabled; 409 when no enabled administrator would be left."""
    before = rt.catalog.people.user(who.tenant.id, user_id)
    user = rt.catalog.people.update_user(
        who.tenant.id,
        user_id,
        display_name=body.display_name,
        email=body.email,
        roles=body.roles,
        disabled=body.disabled,
    )
    _audit(
        rt,
        who,
        "user.change",
        user_id,
        roles=[sorted(before.granted_roles), sorted(user.granted_roles)],
        disabled=[before.disabled, user.disabled],
    )
    return _user(user)


@router.put("/users/{user_id}/password", tags=["people"], status_code=204)
def set_password(rt: RT, who: Who, user_id: str, body: PasswordSet) -> Response:
    rt.catalog.people.set_password(who.tenant.id, user_id, body.password)
    _audit(rt, who, "user.password", user_id)
    return Response(status_code=204)


@router.get("/groups", tags=["people"])
def list_groups(rt: RT, who: Who) -> list[GroupPublic]:
    return [GroupPublic.model_validate(g) for g in rt.catalog.people.groups(who.tenant.id)]


@router.post("/groups", tags=["people"], status_code=201)
def create_group(rt: RT, who: Who, body: GroupCreate) -> GroupPublic:
    group = rt.catalog.people.create_group(who.tenant.id, body.name, body.description)
    _audit(rt, who, "group.create", group.id, name=group.name)
    return GroupPublic.model_validate(group)


@router.get("/groups/{group_id}", tags=["people"])
def get_group(rt: RT, who: Who, group_id: str) -> GroupPublic:
    return GroupPublic.model_validate(rt.catalog.people.group(who.tenant.id, group_id))


@router.delete("/groups/{group_id}", tags=["people"], status_code=204)
def delete_group(rt: RT, who: Who, group_id: str) -> Response:
    """Delete a group: access list entries naming it grant nobody from then on."""
    group = rt.catalog.people.group(who.tenant.id, group_id)
    rt.catalog.people.delete_group(who.tenant.id, group_id)
    _audit(rt, who, "group.delete", group_id, name=group.name)
    return Response(status_code=204)


@router.put("/groups/{group_id}/members", tags=["people"])
def set_members(rt: RT, who: Who, group_id: str, body: MembersSet) -> GroupPublic:
    """Replace the members granted here (single sign-on members come from the provider)."""
    before = rt.catalog.people.group(who.tenant.id, group_id)
    group = rt.catalog.people.set_members(who.tenant.id, group_id, body.user_ids)
    _audit(
        rt,
        who,
        "group.members",
        group_id,
        added=sorted(set(group.member_ids) - set(before.member_ids)),
        removed=sorted(set(before.member_ids) - set(group.member_ids)),
    )
    return GroupPublic.model_validate(group)


# -- API keys -----------------------------------------------------------------------------


@router.get("/keys", tags=["people"])
def list_keys(rt: RT, who: Who, user_id: str | None = None) -> list[KeyPublic]:
    """One's own keys; an administrator's: any user's (``user_id``) or all."""
    if not who.admin:
        user_id = who.user_id
    return [_key(k) for k in rt.catalog.people.keys(who.tenant.id, user_id)]


@router.post("/keys", tags=["people"], status_code=201)
def create_key(rt: RT, who: Who, body: KeyCreate) -> KeyCreated:
    """A key acting for oneself (or, for an administrator, another user) with at most the
    scopes that user's roles grant, and at most the caller's own."""
    owner_id = body.user_id or who.user_id
    if owner_id != who.user_id and not who.admin:
        raise _refuse(
            rt, who, "key.create", owner_id, Forbidden("keys of others are an administrator's")
        )
    owner = rt.catalog.people.user(who.tenant.id, owner_id)
    wanted = {Scope(s) for s in body.scopes}
    beyond = wanted - (scopes_of(owner.roles) & who.scopes)
    if beyond:
        exc = Forbidden(
            f"scopes {', '.join(sorted(s.value for s in beyond))} exceed what the key's user "
            "and the caller hold"
        )
        raise _refuse(rt, who, "key.create", owner_id, exc)
    key, info = rt.catalog.people.create_key(
        who.tenant.id, owner_id, body.name, [s.value for s in wanted], expires_at=body.expires_at
    )
    _audit(rt, who, "key.create", info.id, user_id=owner_id, scopes=list(info.scopes))
    return KeyCreated(key=key, info=_key(info))


@router.delete("/keys/{key_id}", tags=["people"])
def revoke_key(rt: RT, who: Who, key_id: str) -> KeyPublic:
    found = rt.catalog.people.key(who.tenant.id, key_id)
    if found.user_id != who.user_id and not who.admin:
        raise NotFound(f"no API key with id {key_id!r}")
    info = rt.catalog.people.revoke_key(who.tenant.id, key_id)
    _audit(rt, who, "key.revoke", key_id, user_id=info.user_id)
    return _key(info)


# -- access lists -------------------------------------------------------------------------


def _entries(listed: AccessList | tuple[Any, ...]) -> list[EntryModel]:
    entries = listed.entries if isinstance(listed, AccessList) else listed
    return [EntryModel(principal=e.principal, permission=e.permission.label) for e in entries]  # type: ignore[arg-type]


def _access_public(who: Caller, listed: AccessList, effective: tuple[Any, ...]) -> AccessPublic:
    return AccessPublic(
        kind=listed.kind,
        resource_id=listed.resource_id,
        inherit=listed.inherit,
        entries=_entries(listed),
        effective=_entries(effective),
        updated_at=listed.updated_at,
        updated_by=listed.updated_by,
        caller_may=allowed(who, effective).name.lower(),  # type: ignore[arg-type]
    )


@router.get("/collections/{name}/access", tags=["access"])
def get_collection_access(rt: RT, who: Who, name: str) -> AccessPublic:
    coll_id = ids.collection_id(who.tenant.id, name)
    listed = rt.catalog.access.get(who.tenant.id, ResourceKind.COLLECTION, coll_id)
    return _access_public(who, listed, rt.catalog.access.for_collection(who.tenant.id, name))


@router.put("/collections/{name}/access", tags=["access"])
def put_collection_access(
    rt: RT, who: Who, access: Access, name: str, body: AccessSet
) -> AccessPublic:
    """Replace the collection's list (manage on it); every document inheriting it follows,
    in the catalog at once and in the stores' copies before this answers."""
    auth.require_collection(rt, who, name, Permission.MANAGE)
    coll = rt.catalog.collections.ensure(who.tenant.id, name)
    listed = access.set(
        who, ResourceKind.COLLECTION, coll.id, [(e.principal, e.permission) for e in body.entries]
    )
    return _access_public(who, listed, rt.catalog.access.for_collection(who.tenant.id, name))


@router.get("/documents/{document_id}/access", tags=["access"])
def get_document_access(rt: RT, who: Who, document_id: str) -> AccessPublic:
    listed = rt.catalog.access.get(who.tenant.id, ResourceKind.DOCUMENT, document_id)
    effective = rt.catalog.access.for_document(who.tenant.id, document_id)
    if effective is None:
        raise NotFound(f"no document with id {document_id!r}")
    return _access_public(who, listed, effective)


@router.put("/documents/{document_id}/access", tags=["access"])
def put_document_access(
    rt: RT, who: Who, access: Access, document_id: str, body: AccessSet
) -> AccessPublic:
    """Replace the document's own list (manage on it): added to its collection's
    (``inherit``), or in its place."""
    auth.require_document(rt, who, document_id, Permission.MANAGE)
    listed = access.set(
        who,
        ResourceKind.DOCUMENT,
        document_id,
        [(e.principal, e.permission) for e in body.entries],
        inherit=body.inherit,
    )
    effective = rt.catalog.access.for_document(who.tenant.id, document_id) or ()
    return _access_public(who, listed, effective)


# -- the audit trail (administrators) -------------------------------------------------------


def _query(
    actor: str | None = None,
    action: Annotated[str | None, Query(description="Exact, or a prefix: document.*")] = None,
    target: str | None = None,
    outcome: Annotated[str | None, Query(description="done, refused, ...")] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
) -> AuditQuery:
    return AuditQuery(actor, action, target, outcome, since, until)


Filters = Annotated[AuditQuery, Depends(_query)]


@router.get("/audit", tags=["audit"])
def audit_trail(
    rt: RT,
    who: Who,
    query: Filters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    before_seq: Annotated[int | None, Query(ge=1)] = None,
) -> list[AuditPublic]:
    """Newest first; ``action`` may end in ``*`` (``document.*``); ``before_seq`` pages back."""
    found = rt.catalog.audit.trail(who.tenant.id, query, before_seq=before_seq, limit=limit)
    return [AuditPublic.model_validate(e) for e in found]


@router.get("/audit/export", tags=["audit"], response_class=StreamingResponse)
def export_audit(
    rt: RT,
    who: Who,
    query: Filters,
    format: Literal["jsonl", "csv"] = "jsonl",
) -> StreamingResponse:
    """The filtered trail, oldest first, as JSON lines or CSV (streamed, any size)."""
    _audit(rt, who, "audit.export", who.tenant.id, format=format)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv; charset=utf-8"
    name = f"audit-{who.tenant.name}.{format}"
    return StreamingResponse(
        export_lines(rt.catalog.audit.scan(who.tenant.id, query), format),
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="{quote(name)}"'},
    )


@router.get("/audit/verify", tags=["audit"])
async def verify_audit(rt: RT, who: Who) -> VerifyPublic:
    """Recompute the tenant's hash chain: ``ok`` false names each entry where it breaks."""
    report = await run_in_threadpool(rt.catalog.audit.verify, who.tenant.id)
    return VerifyPublic(
        ok=report.ok,
        entries=report.entries,
        breaks=[ChainBreakPublic.model_validate(b) for b in report.breaks],
    )
