"""Who calls, and whether they may: the one authentication and authorisation path of the API.

Every ``/v1`` route depends on :func:`serving.api.current_tenant`, which calls
:func:`authorize` here:

1. **Authentication.** The bearer token is a gedrag API key (``gdr_``), a session token from a
   password or single sign-on (``gds_``), or an access token of the OpenID Connect provider
   (a JWT, verified by :mod:`serving.oidc`). Unknown, revoked, expired, forged tokens and
   tokens of a disabled user answer 401.
2. **Scopes.** Each route needs a scope (:func:`required_scope`: reads ``read``, writes
   ``write``, people and the audit trail ``admin``, releases ``promote``), which the caller's
   effective scopes must hold (:class:`core.access.Caller`), else 403.
3. **Access lists.** A route on a document (``{document_id}``) needs read (GET) or write
   (others) on it; an upload needs write on its collection, a move on the target collection,
   deleting a collection manage. A document the caller may not read answers 404, as if it did
   not exist; one it may read but not change 403.

Every refusal is written to the audit trail (the tenant's chain, or the platform's when the
token names no tenant) with the caller's address, before the error answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from core.access import (
    AuditContext,
    Caller,
    Identity,
    Permission,
    Scope,
    allowed,
    audit_context,
    legacy_scopes,
    scopes_of,
)
from core.errors import Forbidden, GedragError, NotFound, Unauthorized
from core.settings import Settings
from runtime import Runtime
from serving.oidc import OidcClient, looks_like_jwt

log = logging.getLogger(__name__)

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# POST routes that only read: questions are reads.
READ_POSTS = frozenset({"/v1/search", "/v1/ask", "/v1/chat", "/v1/chat/completions"})
ROUTE_SCOPES: dict[tuple[str, str], Scope] = {
    # Promotion: the route checks the promote scope itself (serving.eval_api), a promoter
    # needs no write.
    ("POST", "/v1/releases/{release_id}/promote"): Scope.READ,
    ("POST", "/v1/eval/runs"): Scope.READ,
    # The audit trail is an administrator's. (The records lifecycle's retention preview and
    # subject search keep what any key could do before: they read, and check no list.)
    ("GET", "/v1/records/audit"): Scope.ADMIN,
    # Self-service: one's own identity, sessions and keys.
    ("GET", "/v1/auth/me"): Scope.READ,
    ("POST", "/v1/auth/logout"): Scope.READ,
    ("GET", "/v1/keys"): Scope.READ,
    ("POST", "/v1/keys"): Scope.READ,
    ("DELETE", "/v1/keys/{key_id}"): Scope.READ,
    ("POST", "/v1/auth/password"): Scope.READ,
    # Rating an answer one was given (the Ask page's thumbs): its trace id came with it.
    ("POST", "/v1/traces/{trace_id}/feedback"): Scope.READ,
    # Managing a resource's access list: write, then manage on the resource (its route).
    ("PUT", "/v1/collections/{name}/access"): Scope.WRITE,
    ("PUT", "/v1/documents/{document_id}/access"): Scope.WRITE,
}
# Whole areas: people, the audit trail, answer traces (they hold questions and answers drawn
# from documents their reader may not read).
PREFIX_SCOPES = (
    ("/v1/users", Scope.ADMIN),
    ("/v1/groups", Scope.ADMIN),
    ("/v1/audit", Scope.ADMIN),
    ("/v1/traces", Scope.ADMIN),
    ("/v1/monitoring", Scope.ADMIN),
    ("/v1/experiments", Scope.ADMIN),
)
UPLOADS = frozenset({"/v1/documents", "/v1/documents/batch"})


def required_scope(method: str, template: str) -> Scope:
    """The scope a route needs, by its method and path template."""
    if (found := ROUTE_SCOPES.get((method, template))) is not None:
        return found
    for prefix, scope in PREFIX_SCOPES:
        if template == prefix or template.startswith(prefix + "/"):
            return scope
    if method in SAFE_METHODS or (method == "POST" and template in READ_POSTS):
        return Scope.READ
    return Scope.WRITE


def effective_scopes(identity: Identity, settings: Settings) -> frozenset[Scope]:
    """A session's scopes are its user's roles'; a key's are its own within them (a ``legacy``
    key's are decided by the settings, :func:`core.access.legacy_scopes`)."""
    by_roles = scopes_of(identity.user.roles)
    if identity.key_scopes is None:
        return by_roles
    wanted = set(identity.key_scopes)
    if Scope.LEGACY in wanted:
        wanted |= legacy_scopes(
            key_name=identity.key_name or "",
            tenant_name=identity.tenant.name,
            admin_keys=settings.records.admin_keys,
            promoters=settings.evaluation.promoters,
        )
    return frozenset(wanted & by_roles)


def caller_of(identity: Identity, settings: Settings, via: str) -> Caller:
    return Caller(
        tenant=identity.tenant,
        user_id=identity.user.id,
        username=identity.user.username,
        kind=identity.user.kind,
        roles=identity.user.roles,
        scopes=effective_scopes(identity, settings),
        group_ids=identity.group_ids,
        via=via,
        key_name=identity.key_name,
        session_id=identity.session_id,
    )


def oidc_client(state: Any, settings: Settings) -> OidcClient | None:
    """The app's client of the identity provider (``None`` without single sign-on)."""
    if not settings.auth.oidc_issuer:
        return None
    found: OidcClient | None = getattr(state, "oidc", None)
    if found is None:
        found = state.oidc = OidcClient(settings.auth, prod=settings.env == "prod")
    return found


def sso_tenant(rt: Runtime) -> str:
    return rt.settings.auth.oidc_tenant or rt.settings.default_tenant


class Known(Unauthorized):
    """Refused, though who it is is known: the refusal goes to that tenant's trail."""

    def __init__(self, detail: str, *, tenant_id: str, actor: str) -> None:
        super().__init__(detail)
        self.tenant_id, self.actor = tenant_id, actor


def authenticate(rt: Runtime, token: str, oidc: OidcClient | None) -> Caller:
    """The caller a token stands for; :class:`Unauthorized` otherwise."""
    if looks_like_jwt(token):
        if oidc is None:
            raise Unauthorized("single sign-on is not configured: use an API key")
        who = oidc.sign_in(oidc.verify(token))
        tenant = rt.catalog.tenants.get(sso_tenant(rt))
        try:
            identity = rt.catalog.people.sso_identity(tenant, **who.profile())
        except Unauthorized as exc:  # a valid token of a disabled user: its tenant's trail
            raise Known(exc.detail, tenant_id=tenant.id, actor=f"user:{who.username}") from exc
        return caller_of(identity, rt.settings, "sso:token")
    identity = rt.catalog.people.identify(token)
    if identity.session_id is not None:
        via = f"session:{identity.session_method}"
    else:
        via = f"key:{identity.key_name}:{identity.key_prefix}"
    return caller_of(identity, rt.settings, via)


def refused(
    rt: Runtime,
    tenant_id: str,
    actor: str,
    action: str,
    target: str,
    reason: GedragError,
    **detail: Any,
) -> None:
    """Write a refusal to the audit trail (never failing the request a second time)."""
    try:
        rt.catalog.audit.append(
            tenant_id, actor, action, target, "refused", {"reason": reason.detail, **detail}
        )
    except GedragError:
        log.exception("could not audit a refusal", extra={"action": action})


def source_of(request: Request) -> str:
    return request.client.host if request.client else ""


def template_of(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


async def authorize(request: Request, rt: Runtime, token: str) -> Caller:
    """Authenticate the token and check the route's scope and access lists (module doc)."""
    source = source_of(request)
    audit_context.set(AuditContext(source=source))
    action = f"{request.method} {template_of(request)}"
    oidc = oidc_client(request.app.state, rt.settings)
    try:
        caller = await run_in_threadpool(authenticate, rt, token, oidc)
    except Unauthorized as exc:
        if isinstance(exc, Known):
            tenant_id, actor = exc.tenant_id, exc.actor
        else:
            tenant_id, actor = await run_in_threadpool(rt.catalog.people.whose, token)
        await run_in_threadpool(
            refused, rt, tenant_id, actor, "auth.token", action, exc, token=_shown(token)
        )
        request.state.refusal_audited = True
        raise
    audit_context.set(AuditContext(source=source, via=caller.via))
    request.state.caller = caller
    try:
        await check_route(request, rt, caller)
    except GedragError:
        request.state.refusal_audited = True  # serving.audit_log writes no second entry
        raise
    return caller


def _shown(token: str) -> str:
    """What of a refused token the trail may keep: a key's display prefix, never a secret."""
    if looks_like_jwt(token):
        return "jwt"
    return token[:12] + "…"


async def check_route(request: Request, rt: Runtime, caller: Caller) -> None:
    method, template = request.method, template_of(request)
    action = f"{method} {template}"
    need = required_scope(method, template)
    if not caller.can(need):
        exc = Forbidden(
            f"{action} needs the {need.value} scope; this caller has "
            f"{', '.join(sorted(s.value for s in caller.scopes)) or 'none'}"
        )
        await run_in_threadpool(
            refused, rt, caller.tenant.id, caller.actor, "auth.scope", action, exc
        )
        raise exc
    params = request.path_params
    checks: list[Callable[[], None]] = []
    if "document_id" in params:
        level = Permission.READ if method in SAFE_METHODS else Permission.WRITE
        checks.append(lambda: require_document(rt, caller, params["document_id"], level))
    if template == "/v1/collections/{name:path}" and method == "DELETE":
        checks.append(lambda: require_collection(rt, caller, params["name"], Permission.MANAGE))
    if template in UPLOADS and method == "POST":
        form = await request.form()
        name = str(form.get("collection") or "default")
        checks.append(lambda: require_collection(rt, caller, name, Permission.WRITE))
    if template == "/v1/documents/{document_id}" and method == "PATCH":
        target = await _json_field(request, "collection")
        if target:
            checks.append(lambda: require_collection(rt, caller, target, Permission.WRITE))
    for check in checks:
        await run_in_threadpool(check)


async def _json_field(request: Request, name: str) -> str | None:
    try:
        body = await request.json()
    except ValueError:
        return None  # the route's own validation answers 422
    value = body.get(name) if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def require_document(rt: Runtime, caller: Caller, document_id: str, level: Permission) -> None:
    """:class:`NotFound` when the caller may not read the document, :class:`Forbidden` when
    it may read but not ``level``; both audited. A document that does not exist passes (the
    route answers its own 404)."""
    entries = rt.catalog.access.for_document(caller.tenant.id, document_id)
    if entries is None:
        return
    have = allowed(caller, entries)
    if have >= level:
        return
    exc: GedragError
    if have < Permission.READ:
        exc = NotFound(f"no document with id {document_id!r}")
    else:
        exc = Forbidden(f"{level.label} on document {document_id} is not granted to this caller")
    refused(
        rt, caller.tenant.id, caller.actor, "access.document", document_id, exc, need=level.label
    )
    raise exc


def require_collection(rt: Runtime, caller: Caller, name: str, level: Permission) -> None:
    have = allowed(caller, rt.catalog.access.for_collection(caller.tenant.id, name))
    if have >= level:
        return
    exc = Forbidden(f"{level.label} on collection {name!r} is not granted to this caller")
    refused(rt, caller.tenant.id, caller.actor, "access.collection", name, exc, need=level.label)
    raise exc


def hidden_documents(rt: Runtime, who: Caller) -> tuple[str, ...]:
    """Documents the caller may not read (access lists): searches, answers and listings of
    jobs or decisions leave them out. An administrator reads all."""
    principals = who.read_filter
    if principals is None:
        return ()
    return tuple(rt.catalog.access.unreadable_documents(who.tenant.id, principals))


def hidden_for(request: Request) -> tuple[str, ...]:
    """:func:`hidden_documents` of the caller :func:`authorize` let in."""
    return hidden_documents(request.app.state.runtime, caller(request))


def caller(request: Request) -> Caller:
    """The caller :func:`authorize` let through this request."""
    found: Caller = request.state.caller
    return found
