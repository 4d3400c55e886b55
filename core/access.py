"""People and permissions inside a tenant (issue #19): who calls, what they may do, what they
may read, and the hash chain of the audit trail.

* **Principals.** Users (local accounts with an argon2 password, or from single sign-on) and
  service accounts belong to one tenant; groups gather users. ACL entries name principals as
  ``everyone``, ``user:<user id>`` or ``group:<group id>``.
* **Roles and scopes.** A user holds roles (:class:`Role`); each role grants scopes
  (:data:`ROLE_SCOPES`). An API key carries scopes too, and acts with the scopes both its key
  and its owner hold at the moment it is used (a demoted owner's keys lose power at once). A
  key made before people existed (Alembic 0011) or by ``gedrag keys create`` carries the scope
  ``legacy``: read and write, ``admin`` when its name is in ``GEDRAG_RECORDS__ADMIN_KEYS`` and
  ``promote`` when its tenant is in ``GEDRAG_EVALUATION__PROMOTERS``, exactly what it could do
  before, so nothing loses or gains access on upgrade (:func:`legacy_scopes`).
* **Access lists** (:class:`AccessList`) on collections and documents grant ``read``, ``write``
  or ``manage``. A collection without entries is open: everyone may read and write it as their
  role allows. A document inherits its collection's list, adds its own entries, or replaces it
  (``inherit=False``). What a caller may do is the lower of what the list grants its
  principals and what its scopes allow (:func:`allowed`); an administrator may do everything.
* **Readers** of a document (:func:`readers`) are the principals its list lets read: what the
  catalog filters on in SQL and the graph carries. Searches, answers and MCP tools leave out
  the documents a caller may not read (``SearchFilter.hidden_document_ids``, computed from the
  catalog at each question), so a change of a list holds for the next question.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from typing import Any

from core import ids
from core.domain import Tenant

EVERYONE = "everyone"
# The hash a tenant's first audit entry chains to.
GENESIS = "0" * 64


class Role(StrEnum):
    ADMIN = "admin"  # people, groups, every access list, the audit trail
    EDITOR = "editor"  # uploads, edits, deletes where the access lists allow writing
    READER = "reader"  # reads and asks where the access lists allow reading
    PROMOTER = "promoter"  # evaluates and promotes pipeline releases


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    PROMOTE = "promote"
    LEGACY = "legacy"  # a key from before people existed: see legacy_scopes


ROLE_SCOPES: Mapping[Role, frozenset[Scope]] = {
    Role.ADMIN: frozenset({Scope.READ, Scope.WRITE, Scope.ADMIN}),
    Role.EDITOR: frozenset({Scope.READ, Scope.WRITE}),
    Role.READER: frozenset({Scope.READ}),
    Role.PROMOTER: frozenset({Scope.READ, Scope.PROMOTE}),
}


class Permission(IntEnum):
    """What an access list grants; each includes the ones below it."""

    NONE = 0
    READ = 1
    WRITE = 2
    MANAGE = 3  # change the resource's access list

    @classmethod
    def named(cls, name: str) -> Permission:
        try:
            found = cls[name.upper()]
        except KeyError:
            found = cls.NONE
        if found is cls.NONE:
            raise ValueError(f"permission must be read, write or manage, not {name!r}")
        return found

    @property
    def label(self) -> str:
        return self.name.lower()


class ResourceKind(StrEnum):
    COLLECTION = "collection"
    DOCUMENT = "document"
    SOURCE = "source"  # the hook for sources: what they bring in inherits their list


class UserKind(StrEnum):
    USER = "user"
    SERVICE = "service"  # a service account: keys only, no password, no sign-in


def user_principal(user_id: str) -> str:
    return f"user:{user_id}"


def group_principal(group_id: str) -> str:
    return f"group:{group_id}"


def scopes_of(roles: Iterable[Role]) -> frozenset[Scope]:
    out: set[Scope] = set()
    for role in roles:
        out |= ROLE_SCOPES[role]
    return frozenset(out)


def legacy_scopes(
    *, key_name: str, tenant_name: str, admin_keys: Iterable[str], promoters: Iterable[str]
) -> frozenset[Scope]:
    """What a ``legacy`` key may do: what any key could before Alembic 0011 (read, write), the
    records administration when its name is in ``GEDRAG_RECORDS__ADMIN_KEYS``, promotion when
    its tenant is in ``GEDRAG_EVALUATION__PROMOTERS``."""
    out = {Scope.READ, Scope.WRITE}
    if key_name in set(admin_keys):
        out.add(Scope.ADMIN)
    if tenant_name in set(promoters):
        out.add(Scope.PROMOTE)
    return frozenset(out)


@dataclass(frozen=True)
class User:
    """A person or service account of a tenant. ``roles`` are effective: those granted in
    gedrag and those the identity provider's groups gave at the last sign-in."""

    id: str
    tenant_id: str
    username: str
    display_name: str
    email: str
    kind: UserKind
    granted_roles: frozenset[Role]
    sso_roles: frozenset[Role]
    has_password: bool
    sso: bool
    disabled: bool
    created_at: datetime
    last_sign_in_at: datetime | None

    @property
    def roles(self) -> frozenset[Role]:
        return self.granted_roles | self.sso_roles


@dataclass(frozen=True)
class Group:
    id: str
    tenant_id: str
    name: str
    description: str
    origin: str  # local | sso
    created_at: datetime
    member_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Identity:
    """What a presented key or session token stands for, before the settings turn a key's
    scopes into effective ones (:func:`legacy_scopes`)."""

    tenant: Tenant
    user: User
    group_ids: tuple[str, ...]
    key_name: str | None = None
    key_prefix: str | None = None
    key_scopes: frozenset[Scope] | None = None  # None: a session (the user's roles decide)
    session_id: str | None = None
    session_method: str | None = None


@dataclass(frozen=True)
class Caller:
    """Who sends a request, as authentication found them.

    ``scopes`` are effective: the key's (or session's) scopes within the owner's roles.
    ``via`` says how they authenticated (``key:<name>:<prefix>``, ``session``, ``sso``);
    ``actor`` is how the audit trail names them."""

    tenant: Tenant
    user_id: str
    username: str
    kind: UserKind
    roles: frozenset[Role]
    scopes: frozenset[Scope]
    group_ids: tuple[str, ...]
    via: str
    key_name: str | None = None
    session_id: str | None = None

    def can(self, scope: Scope) -> bool:
        return scope in self.scopes

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    @property
    def actor(self) -> str:
        return f"{self.kind.value}:{self.username}"

    @property
    def principals(self) -> tuple[str, ...]:
        """The ACL principals this caller counts as (``everyone``, itself, its groups)."""
        return (EVERYONE, user_principal(self.user_id), *map(group_principal, self.group_ids))

    @property
    def read_filter(self) -> tuple[str, ...] | None:
        """The principals a store query filters on; ``None`` for an administrator, who reads
        everything of the tenant."""
        return None if self.admin else self.principals


@dataclass(frozen=True)
class AccessEntry:
    principal: str  # everyone | user:<id> | group:<id>
    permission: Permission


@dataclass(frozen=True)
class AccessList:
    """The access list of one resource. ``entries`` empty and ``inherit`` true is the default
    of every resource; a collection's ``inherit`` is meaningless (collections inherit nothing).
    """

    kind: ResourceKind
    resource_id: str
    entries: tuple[AccessEntry, ...] = ()
    inherit: bool = True
    updated_at: datetime | None = None
    updated_by: str = ""

    @property
    def open(self) -> bool:
        return not self.entries


# A collection without entries: everyone may write it (as far as their role allows).
OPEN = (AccessEntry(EVERYONE, Permission.WRITE),)


def effective_entries(
    collection: AccessList, document: AccessList | None
) -> tuple[AccessEntry, ...]:
    """The entries that decide about a document: its collection's (or :data:`OPEN`) when it
    inherits, plus its own."""
    inherited: tuple[AccessEntry, ...] = ()
    if document is None or document.inherit:
        inherited = collection.entries or OPEN
    own = document.entries if document is not None else ()
    return (*inherited, *own)


def granted(entries: Iterable[AccessEntry], principals: Iterable[str]) -> Permission:
    """The highest permission the entries grant any of these principals."""
    wanted = set(principals)
    best = Permission.NONE
    for e in entries:
        if e.principal in wanted and e.permission > best:
            best = e.permission
    return best


def allowed(caller: Caller, entries: Iterable[AccessEntry]) -> Permission:
    """What the caller may do with a resource: the access list's grant, capped by its scopes
    (a reader never writes, whatever a list says); an administrator manages everything."""
    if caller.admin:
        return Permission.MANAGE
    cap = (
        Permission.MANAGE
        if caller.can(Scope.WRITE)
        else (Permission.READ if caller.can(Scope.READ) else Permission.NONE)
    )
    return min(granted(entries, caller.principals), cap)


def readers(entries: Iterable[AccessEntry]) -> tuple[str, ...]:
    """The principals allowed to read, sorted: the vector payload's and the graph's copy."""
    return tuple(sorted({e.principal for e in entries if e.permission >= Permission.READ}))


# -- the audit trail's hash chain ---------------------------------------------------------


@dataclass(frozen=True)
class AuditContext:
    """Where the current request comes from and how its caller signed in: stamped on every
    audit entry written while it runs (the records lifecycle's too)."""

    source: str = ""
    via: str = ""


# A frozen dataclass: the shared default cannot be mutated.
audit_context: ContextVar[AuditContext] = ContextVar(
    "audit_context",
    default=AuditContext(),  # noqa: B039
)


@contextmanager
def audited_as(source: str, via: str) -> Iterator[None]:
    """Stamp audit entries written in the block with this source and sign-in."""
    token = audit_context.set(AuditContext(source=source, via=via))
    try:
        yield
    finally:
        audit_context.reset(token)


def audit_fields(
    *,
    entry_id: str,
    tenant_id: str,
    seq: int,
    at: datetime,
    actor: str,
    via: str,
    source: str,
    action: str,
    target: str,
    outcome: str,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    """What an audit entry's hash covers. ``at`` is written as naive UTC to the microsecond,
    the precision both SQLite and PostgreSQL keep."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return {
        "id": entry_id,
        "tenant_id": tenant_id,
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "via": via,
        "source": source,
        "action": action,
        "target": target,
        "outcome": outcome,
        "detail": dict(detail),
    }


def chain_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 of the previous entry's hash and this entry's canonical JSON: editing, removing
    or reordering any entry changes every hash after it."""
    return hashlib.sha256((prev_hash + ids.canonical_json(dict(fields))).encode()).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where verification found the chain broken, and why."""

    tenant_id: str
    seq: int
    entry_id: str
    reason: str


@dataclass(frozen=True)
class ChainReport:
    tenants: int
    entries: int
    breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks
