"""The rules of issue #19 as pure functions: what an access list lets a caller do, who reads a
document, what a key from before people existed may do, which scope each route of the app
needs, and the audit trail's hash chain."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from core.access import (
    EVERYONE,
    GENESIS,
    AccessEntry,
    AccessList,
    Caller,
    Permission,
    ResourceKind,
    Role,
    Scope,
    UserKind,
    allowed,
    audit_fields,
    chain_hash,
    effective_entries,
    legacy_scopes,
    readers,
    scopes_of,
)
from core.domain import Tenant
from serving.auth import required_scope

pytestmark = pytest.mark.unit

R, W, M = Permission.READ, Permission.WRITE, Permission.MANAGE
TENANT = Tenant("t1", "acme", datetime(2026, 1, 1, tzinfo=UTC))


def caller(*roles: Role, groups: tuple[str, ...] = ()) -> Caller:
    return Caller(
        tenant=TENANT,
        user_id="u1",
        username="u",
        kind=UserKind.USER,
        roles=frozenset(roles),
        scopes=scopes_of(roles),
        group_ids=groups,
        via="session:password",
    )


def listed(
    kind: ResourceKind, *entries: tuple[str, Permission], inherit: bool = True
) -> AccessList:
    return AccessList(kind, "r1", tuple(AccessEntry(p, x) for p, x in entries), inherit)


def test_an_open_collection_lets_each_do_what_its_role_allows() -> None:
    coll = listed(ResourceKind.COLLECTION)
    entries = effective_entries(coll, None)
    assert allowed(caller(Role.READER), entries) == R
    assert allowed(caller(Role.EDITOR), entries) == W  # manage is granted, never implied
    assert allowed(caller(Role.ADMIN), entries) == M
    assert allowed(caller(Role.PROMOTER), entries) == R
    assert allowed(caller(), entries) == Permission.NONE
    assert readers(entries) == (EVERYONE,)


def test_documents_inherit_add_to_or_replace_their_collections_list() -> None:
    coll = listed(ResourceKind.COLLECTION, ("group:hr", W))
    hr, legal = caller(Role.EDITOR, groups=("hr",)), caller(Role.EDITOR, groups=("legal",))
    inherits = effective_entries(coll, None)
    assert (allowed(hr, inherits), allowed(legal, inherits)) == (W, Permission.NONE)
    adds = effective_entries(coll, listed(ResourceKind.DOCUMENT, ("group:legal", R)))
    assert (allowed(hr, adds), allowed(legal, adds)) == (W, R)
    assert readers(adds) == ("group:hr", "group:legal")
    replaces = effective_entries(
        coll, listed(ResourceKind.DOCUMENT, ("group:legal", M), inherit=False)
    )
    assert (allowed(hr, replaces), allowed(legal, replaces)) == (Permission.NONE, M)
    # A list granting a reader manage still lets it only read: roles cap lists.
    assert allowed(caller(Role.READER, groups=("legal",)), replaces) == R
    # An administrator is never locked out, whatever a list says.
    assert allowed(caller(Role.ADMIN), replaces) == M


def test_the_principals_and_read_filter_of_a_caller() -> None:
    who = caller(Role.READER, groups=("g1", "g2"))
    assert who.principals == (EVERYONE, "user:u1", "group:g1", "group:g2")
    assert who.read_filter == who.principals
    assert caller(Role.ADMIN).read_filter is None  # administrators read everything


def test_legacy_keys_keep_what_they_could_do_before_people_existed() -> None:
    settings = {"admin_keys": ["bootstrap", "default"], "promoters": ["default"]}
    assert legacy_scopes(key_name="intern", tenant_name="acme", **settings) == {
        Scope.READ,
        Scope.WRITE,
    }
    assert legacy_scopes(key_name="default", tenant_name="default", **settings) == {
        Scope.READ,
        Scope.WRITE,
        Scope.ADMIN,
        Scope.PROMOTE,
    }


@pytest.mark.parametrize(
    ("method", "route", "scope"),
    [
        ("GET", "/v1/documents", Scope.READ),
        ("POST", "/v1/documents", Scope.WRITE),
        ("DELETE", "/v1/documents/{document_id}", Scope.WRITE),
        ("POST", "/v1/ask", Scope.READ),
        ("POST", "/v1/chat/completions", Scope.READ),
        ("POST", "/v1/releases/{release_id}/promote", Scope.READ),  # the route checks promote
        ("GET", "/v1/users", Scope.ADMIN),
        ("PATCH", "/v1/users/{user_id}", Scope.ADMIN),
        ("GET", "/v1/audit/export", Scope.ADMIN),
        ("GET", "/v1/records/audit", Scope.ADMIN),
        ("GET", "/v1/traces", Scope.ADMIN),
        ("POST", "/v1/keys", Scope.READ),
        ("PUT", "/v1/documents/{document_id}/access", Scope.WRITE),
    ],
)
def test_routes_need_a_scope(method: str, route: str, scope: Scope) -> None:
    assert required_scope(method, route) == scope


def test_every_route_of_the_app_is_classified_and_questions_are_reads() -> None:
    """No route falls through unseen: every /v1 route of the app gets a scope, and each POST
    that only reads is among READ_POSTS (a new question route would otherwise need write)."""
    from serving.app import create_app

    paths = create_app().openapi()["paths"]
    routes = [(m.upper(), p) for p, ops in paths.items() if p.startswith("/v1/") for m in ops]
    assert len(routes) > 60
    scopes = {(m, p): required_scope(m, p) for m, p in routes}
    assert all(isinstance(s, Scope) and s is not Scope.LEGACY for s in scopes.values())
    writes = {p for (m, p), s in scopes.items() if m == "POST" and s is Scope.WRITE}
    assert not writes & {"/v1/search", "/v1/ask", "/v1/chat", "/v1/chat/completions"}


def test_the_hash_chain_covers_every_field_and_the_entry_before() -> None:
    at = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)
    base = dict(
        entry_id="e1",
        tenant_id="t1",
        seq=1,
        at=at,
        actor="user:a",
        via="session:sso",
        source="10.0.0.1",
        action="document.download",
        target="d1",
        outcome="done",
        detail={"version": 2},
    )
    first = chain_hash(GENESIS, audit_fields(**base))  # type: ignore[arg-type]
    assert first == chain_hash(GENESIS, audit_fields(**base))  # type: ignore[arg-type]
    naive = base | {"at": at.replace(tzinfo=None)}  # as SQLite hands it back: the same
    assert chain_hash(GENESIS, audit_fields(**naive)) == first  # type: ignore[arg-type]
    for field, other in (
        ("actor", "user:b"),
        ("target", "d2"),
        ("detail", {"version": 3}),
        ("source", ""),
        ("seq", 2),
        ("outcome", "refused"),
    ):
        assert chain_hash(GENESIS, audit_fields(**(base | {field: other}))) != first  # type: ignore[arg-type]
    assert chain_hash("f" * 64, audit_fields(**base)) != first  # type: ignore[arg-type]


def test_a_permission_is_named() -> None:
    assert Permission.named("Write") is W and W.label == "write"
    with pytest.raises(ValueError, match="read, write or manage"):
        Permission.named("none")
