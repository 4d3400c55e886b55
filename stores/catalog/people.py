"""People of a tenant (Alembic 0011): users and service accounts, groups, API keys owned by a
user, sessions, and single sign-on logins under way.

Secrets are never stored: passwords as argon2id hashes (argon2-cffi's defaults, RFC 9106's
second recommended set: 64 MiB, 3 passes), keys and session tokens as SHA-256 (they carry 256
bits of entropy, so a slow hash buys nothing and an index finds them). :meth:`identify` is the
one lookup authentication does per request: the key or session, its user (refused once
disabled) and the user's groups, in one transaction.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import ids
from core.access import Group, Identity, Role, Scope, User, UserKind
from core.domain import ApiKeyInfo, Tenant
from core.errors import Conflict, InvalidInput, NotFound, Unauthorized
from stores.catalog import rows as conv
from stores.catalog.database import Database
from stores.catalog.models import (
    ApiKeyRow,
    GroupRow,
    MembershipRow,
    OidcLoginRow,
    SessionRow,
    TenantRow,
    UserRow,
    utcnow,
)

SESSION_PREFIX = "gds"
# The user every key of a tenant belonged to before people existed (Alembic 0011), and the
# owner of keys made by `gedrag keys create` / `tenants create`.
OWNER = "admin"
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 hashes anything; a megabyte "password" is a denial of service
# A single sign-on login must come back from the provider within this long.
LOGIN_TTL = timedelta(minutes=10)
LOCAL, SSO = "local", "sso"

_hasher = PasswordHasher()
# Verified when the user does not exist, so that a wrong username costs what a wrong password
# does (no timing oracle for which usernames exist).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class PendingLogin:
    tenant_id: str
    nonce: str
    code_verifier: str
    redirect_uri: str


def _user(r: UserRow) -> User:
    return User(
        id=r.id,
        tenant_id=r.tenant_id,
        username=r.username,
        display_name=r.display_name,
        email=r.email,
        kind=UserKind(r.kind),
        granted_roles=frozenset(Role(x) for x in r.roles or ()),
        sso_roles=frozenset(Role(x) for x in r.sso_roles or ()),
        has_password=r.password_hash is not None,
        sso=r.oidc_subject is not None,
        disabled=r.disabled_at is not None,
        created_at=r.created_at,
        last_sign_in_at=r.last_sign_in_at,
    )


def _group(r: GroupRow, members: Sequence[str] = ()) -> Group:
    return Group(
        id=r.id,
        tenant_id=r.tenant_id,
        name=r.name,
        description=r.description,
        origin=r.origin,
        created_at=r.created_at,
        member_ids=tuple(members),
    )


def check_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InvalidInput(
            f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password"
        )
    return password


def parse_roles(values: Iterable[str]) -> list[str]:
    try:
        return sorted({Role(v).value for v in values})
    except ValueError as exc:
        raise InvalidInput(
            f"roles are {', '.join(r.value for r in Role)}: {exc}", field="roles"
        ) from exc


def parse_scopes(values: Iterable[str]) -> list[str]:
    try:
        found = sorted({Scope(v).value for v in values})
    except ValueError as exc:
        raise InvalidInput(
            f"scopes are read, write, admin and promote: {exc}", field="scopes"
        ) from exc
    if Scope.LEGACY in found:
        raise InvalidInput("the legacy scope is only for keys made before people existed")
    if not found:
        raise InvalidInput("a key needs at least one scope", field="scopes")
    return found


class PeopleRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- users ---------------------------------------------------------------------------

    def create_user(
        self,
        tenant_id: str,
        username: str,
        *,
        roles: Iterable[str] = (Role.READER,),
        display_name: str = "",
        email: str = "",
        kind: UserKind = UserKind.USER,
        password: str | None = None,
    ) -> User:
        username = conv.clean_name(username, "username")
        if kind is UserKind.SERVICE and password is not None:
            raise InvalidInput("a service account has keys, not a password", field="password")
        row = UserRow(
            id=ids.new_id(),
            tenant_id=tenant_id,
            username=username,
            display_name=display_name[:200],
            email=email[:320],
            kind=kind.value,
            roles=parse_roles(roles),
            sso_roles=[],
            password_hash=None if password is None else _hasher.hash(check_password(password)),
        )
        try:
            with self.db.session() as s:
                s.add(row)
                s.flush()
                return _user(row)
        except IntegrityError as exc:
            raise Conflict(f"a user is already named {username!r}") from exc

    def user(self, tenant_id: str, user_id: str) -> User:
        with self.db.session() as s:
            return _user(self._user_row(s, tenant_id, user_id))

    def user_named(self, tenant_id: str, username: str) -> User:
        with self.db.session() as s:
            row = s.scalar(
                select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.username == username)
            )
            if row is None:
                raise NotFound(f"no user named {username!r}")
            return _user(row)

    def users(self, tenant_id: str) -> list[User]:
        with self.db.session() as s:
            rows = s.scalars(
                select(UserRow).where(UserRow.tenant_id == tenant_id).order_by(UserRow.username)
            )
            return [_user(r) for r in rows]

    def update_user(
        self,
        tenant_id: str,
        user_id: str,
        *,
        display_name: str | None = None,
        email: str | None = None,
        roles: Iterable[str] | None = None,
        disabled: bool | None = None,
    ) -> User:
        """Change a user; disabling one refuses its keys and sessions from the next request.
        :class:`Conflict` when the change would leave the tenant without an enabled
        administrator."""
        with self.db.session() as s:
            row = self._user_row(s, tenant_id, user_id)
            had_admin = self._has_admin(s, tenant_id)
            if display_name is not None:
                row.display_name = display_name[:200]
            if email is not None:
                row.email = email[:320]
            if roles is not None:
                row.roles = parse_roles(roles)
            if disabled is not None:
                row.disabled_at = (row.disabled_at or utcnow()) if disabled else None
            row.updated_at = utcnow()
            s.flush()
            if had_admin and not self._has_admin(s, tenant_id):
                raise Conflict("the tenant would have no enabled administrator left")
            return _user(row)

    def set_password(self, tenant_id: str, user_id: str, password: str) -> User:
        with self.db.session() as s:
            row = self._user_row(s, tenant_id, user_id)
            if row.kind == UserKind.SERVICE:
                raise InvalidInput("a service account has keys, not a password", field="password")
            row.password_hash = _hasher.hash(check_password(password))
            row.updated_at = utcnow()
            return _user(row)

    def check_password(self, tenant_id: str, username: str, password: str) -> User:
        """The user these credentials sign in; :class:`Unauthorized` (the same message
        whatever was wrong) otherwise, or when the user is disabled."""
        refused = Unauthorized("unknown user or wrong password")
        with self.db.session() as s:
            row = s.scalar(
                select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.username == username)
            )
            stored = row.password_hash if row is not None else None
            try:
                _hasher.verify(stored or _DUMMY_HASH, password[:MAX_PASSWORD])
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                raise refused from None
            if row is None or stored is None:
                raise refused
            if row.disabled_at is not None:
                raise Unauthorized(f"user {username!r} is disabled")
            if _hasher.check_needs_rehash(stored):
                row.password_hash = _hasher.hash(password)
            row.last_sign_in_at = utcnow()
            return _user(row)

    def sso_user(
        self,
        tenant_id: str,
        *,
        issuer: str,
        subject: str,
        username: str,
        email: str,
        display_name: str,
        roles: Iterable[Role],
        groups: Iterable[str],
    ) -> User:
        """The user of this identity provider's subject, created at its first sign-in; its
        single sign-on roles and groups replaced by what the provider says now (groups
        created when new, marked ``sso``). :class:`Unauthorized` when disabled."""
        with self.db.session() as s:
            row = s.scalar(
                select(UserRow).where(
                    UserRow.tenant_id == tenant_id,
                    UserRow.oidc_issuer == issuer,
                    UserRow.oidc_subject == subject,
                )
            )
            if row is None:
                row = UserRow(
                    id=ids.new_id(),
                    tenant_id=tenant_id,
                    username=self._free_username(s, tenant_id, username or subject),
                    kind=UserKind.USER.value,
                    roles=[],
                    oidc_issuer=issuer,
                    oidc_subject=subject,
                )
                s.add(row)
            if row.disabled_at is not None:
                raise Unauthorized(f"user {row.username!r} is disabled")
            row.display_name = display_name[:200]
            row.email = email[:320]
            row.sso_roles = sorted(r.value for r in set(roles))
            row.last_sign_in_at = row.updated_at = utcnow()
            s.flush()
            self._sync_sso_groups(s, tenant_id, row.id, groups)
            return _user(row)

    def _sync_sso_groups(
        self, s: Session, tenant_id: str, user_id: str, names: Iterable[str]
    ) -> None:
        wanted = {n.strip()[:100] for n in names if n and n.strip()}
        found = {
            r.name: r.id
            for r in s.scalars(
                select(GroupRow).where(GroupRow.tenant_id == tenant_id, GroupRow.name.in_(wanted))
            )
        }
        for name in sorted(wanted - found.keys()):
            group = GroupRow(id=ids.new_id(), tenant_id=tenant_id, name=name, origin=SSO)
            s.add(group)
            found[name] = group.id
        s.flush()
        s.execute(
            delete(MembershipRow).where(
                MembershipRow.user_id == user_id, MembershipRow.origin == SSO
            )
        )
        s.add_all(MembershipRow(group_id=g, user_id=user_id, origin=SSO) for g in found.values())

    def owner(self, tenant_id: str) -> User:
        """The tenant's first administrator (``admin``), created with it when missing: it
        owns the keys `gedrag tenants create` and `gedrag keys create` make."""
        with self.db.session() as s:
            row = s.scalar(
                select(UserRow).where(UserRow.tenant_id == tenant_id, UserRow.username == OWNER)
            )
            if row is not None:
                return _user(row)
        try:
            with self.db.session() as s:
                row = UserRow(
                    id=ids.stable_uuid("user", tenant_id, OWNER),
                    tenant_id=tenant_id,
                    username=OWNER,
                    display_name="Administrator",
                    kind=UserKind.USER.value,
                    roles=[Role.ADMIN.value, Role.PROMOTER.value],
                    sso_roles=[],
                )
                s.add(row)
                s.flush()
                return _user(row)
        except IntegrityError:  # created concurrently
            return self.user_named(tenant_id, OWNER)

    # -- groups --------------------------------------------------------------------------

    def create_group(self, tenant_id: str, name: str, description: str = "") -> Group:
        name = conv.clean_name(name, "name")
        try:
            with self.db.session() as s:
                row = GroupRow(
                    id=ids.new_id(), tenant_id=tenant_id, name=name, description=description
                )
                s.add(row)
                s.flush()
                return _group(row)
        except IntegrityError as exc:
            raise Conflict(f"a group is already named {name!r}") from exc

    def groups(self, tenant_id: str) -> list[Group]:
        with self.db.session() as s:
            members: dict[str, list[str]] = {}
            for group_id, user_id in s.execute(
                select(MembershipRow.group_id, MembershipRow.user_id)
                .join(GroupRow, GroupRow.id == MembershipRow.group_id)
                .where(GroupRow.tenant_id == tenant_id)
                .distinct()
                .order_by(MembershipRow.user_id)
            ):
                members.setdefault(group_id, []).append(user_id)
            rows = s.scalars(
                select(GroupRow).where(GroupRow.tenant_id == tenant_id).order_by(GroupRow.name)
            )
            return [_group(r, members.get(r.id, ())) for r in rows]

    def group(self, tenant_id: str, group_id: str) -> Group:
        with self.db.session() as s:
            row = self._group_row(s, tenant_id, group_id)
            members = s.scalars(
                select(MembershipRow.user_id)
                .where(MembershipRow.group_id == group_id)
                .distinct()
                .order_by(MembershipRow.user_id)
            )
            return _group(row, list(members))

    def group_named(self, tenant_id: str, name: str) -> Group:
        with self.db.session() as s:
            row = s.scalar(
                select(GroupRow).where(GroupRow.tenant_id == tenant_id, GroupRow.name == name)
            )
            if row is None:
                raise NotFound(f"no group named {name!r}")
        return self.group(tenant_id, row.id)

    def delete_group(self, tenant_id: str, group_id: str) -> None:
        with self.db.session() as s:
            row = self._group_row(s, tenant_id, group_id)
            # Explicit: SQLite enforces ON DELETE CASCADE only with foreign_keys=ON.
            s.execute(delete(MembershipRow).where(MembershipRow.group_id == group_id))
            s.delete(row)

    def set_members(self, tenant_id: str, group_id: str, user_ids: Iterable[str]) -> Group:
        """Replace the group's members granted in gedrag (single sign-on ones stay)."""
        wanted = set(user_ids)
        with self.db.session() as s:
            self._group_row(s, tenant_id, group_id)
            known = set(
                s.scalars(
                    select(UserRow.id).where(UserRow.tenant_id == tenant_id, UserRow.id.in_(wanted))
                )
            )
            if unknown := wanted - known:
                raise NotFound(f"no user with id {sorted(unknown)[0]!r}")
            s.execute(
                delete(MembershipRow).where(
                    MembershipRow.group_id == group_id, MembershipRow.origin == LOCAL
                )
            )
            s.add_all(MembershipRow(group_id=group_id, user_id=u, origin=LOCAL) for u in wanted)
        return self.group(tenant_id, group_id)

    def group_ids_of(self, user_id: str) -> tuple[str, ...]:
        with self.db.session() as s:
            return self._group_ids(s, user_id)

    # -- API keys ------------------------------------------------------------------------

    def create_key(
        self,
        tenant_id: str,
        user_id: str,
        name: str,
        scopes: Iterable[str],
        *,
        expires_at: datetime | None = None,
        legacy: bool = False,
    ) -> tuple[str, ApiKeyInfo]:
        """A key acting for the user with these scopes; the key itself is returned once and
        never stored. ``legacy``: the scope of keys from before people existed."""
        chosen = [Scope.LEGACY.value] if legacy else parse_scopes(scopes)
        key, key_hash = ids.new_api_key()
        with self.db.session() as s:
            self._user_row(s, tenant_id, user_id)
            row = ApiKeyRow(
                id=ids.new_id(),
                tenant_id=tenant_id,
                user_id=user_id,
                name=conv.clean_name(name, "name"),
                prefix=key[:12],
                key_hash=key_hash,
                scopes=chosen,
                expires_at=expires_at,
            )
            s.add(row)
            s.flush()
            return key, conv.api_key(row)

    def keys(self, tenant_id: str, user_id: str | None = None) -> list[ApiKeyInfo]:
        q = select(ApiKeyRow).where(ApiKeyRow.tenant_id == tenant_id)
        if user_id is not None:
            q = q.where(ApiKeyRow.user_id == user_id)
        with self.db.session() as s:
            return [
                conv.api_key(r) for r in s.scalars(q.order_by(ApiKeyRow.created_at, ApiKeyRow.id))
            ]

    def key(self, tenant_id: str, key_id: str) -> ApiKeyInfo:
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no API key with id {key_id!r}")
            return conv.api_key(row)

    def revoke_key(self, tenant_id: str, key_id: str) -> ApiKeyInfo:
        with self.db.session() as s:
            row = s.get(ApiKeyRow, key_id)
            if row is None or row.tenant_id != tenant_id:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return conv.api_key(row)

    # -- sessions ------------------------------------------------------------------------

    def create_session(
        self, user: User, *, method: str, source: str, ttl: timedelta
    ) -> tuple[str, datetime]:
        """A session token for the user (returned once) and when it expires."""
        token = f"{SESSION_PREFIX}_{secrets.token_urlsafe(32)}"
        expires = utcnow() + ttl
        with self.db.session() as s:
            s.add(
                SessionRow(
                    id=ids.new_id(),
                    tenant_id=user.tenant_id,
                    user_id=user.id,
                    token_hash=ids.hash_api_key(token),
                    method=method,
                    source=source[:100],
                    expires_at=expires,
                )
            )
        return token, expires

    def revoke_session(self, session_id: str) -> None:
        with self.db.session() as s:
            row = s.get(SessionRow, session_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = utcnow()

    # -- authentication ------------------------------------------------------------------

    def identify(self, token: str) -> Identity:
        """Who a key or session token stands for; :class:`Unauthorized` when it is unknown,
        revoked, expired, or its user is disabled."""
        now = utcnow()
        token_hash = ids.hash_api_key(token)
        with self.db.session() as s:
            if token.startswith(SESSION_PREFIX + "_"):
                found = s.execute(
                    select(SessionRow, UserRow, TenantRow)
                    .join(UserRow, UserRow.id == SessionRow.user_id)
                    .join(TenantRow, TenantRow.id == SessionRow.tenant_id)
                    .where(SessionRow.token_hash == token_hash)
                ).first()
                if found is None or found[0].revoked_at is not None:
                    raise Unauthorized("invalid or revoked session")
                session, user, tenant = found
                if session.expires_at <= now:
                    raise Unauthorized("the session expired: sign in again")
                if user.disabled_at is not None:
                    raise Unauthorized(f"user {user.username!r} is disabled")
                return Identity(
                    tenant=conv.tenant(tenant),
                    user=_user(user),
                    group_ids=self._group_ids(s, user.id),
                    session_id=session.id,
                    session_method=session.method,
                )
            found_key = s.execute(
                select(ApiKeyRow, UserRow, TenantRow)
                .join(UserRow, UserRow.id == ApiKeyRow.user_id)
                .join(TenantRow, TenantRow.id == ApiKeyRow.tenant_id)
                .where(ApiKeyRow.key_hash == token_hash)
            ).first()
            if found_key is None or found_key[0].revoked_at is not None:
                raise Unauthorized("invalid or revoked API key")
            key, user, tenant = found_key
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthorized(f"API key {key.prefix}… expired")
            if user.disabled_at is not None:
                raise Unauthorized(
                    f"the user of API key {key.prefix}…, {user.username!r}, is disabled"
                )
            return Identity(
                tenant=conv.tenant(tenant),
                user=_user(user),
                group_ids=self._group_ids(s, user.id),
                key_name=key.name,
                key_prefix=key.prefix,
                key_scopes=frozenset(Scope(x) for x in key.scopes or ()),
            )

    def sso_identity(
        self,
        tenant: Tenant,
        *,
        issuer: str,
        subject: str,
        username: str,
        email: str,
        display_name: str,
        roles: Iterable[Role],
        groups: Iterable[str],
    ) -> Identity:
        """Who a provider's access token names: read only while the provider says what it
        said at the last sign-in (roles, groups), else brought up to date by
        :meth:`sso_user` first. :class:`Unauthorized` when the user is disabled."""
        wanted_roles, wanted_groups = frozenset(roles), frozenset(groups)
        with self.db.session() as s:
            row = s.scalar(
                select(UserRow).where(
                    UserRow.tenant_id == tenant.id,
                    UserRow.oidc_issuer == issuer,
                    UserRow.oidc_subject == subject,
                )
            )
            if row is not None:
                if row.disabled_at is not None:
                    raise Unauthorized(f"user {row.username!r} is disabled")
                names = frozenset(
                    s.scalars(
                        select(GroupRow.name)
                        .join(MembershipRow, MembershipRow.group_id == GroupRow.id)
                        .where(MembershipRow.user_id == row.id, MembershipRow.origin == SSO)
                    )
                )
                current = frozenset(Role(r) for r in row.sso_roles or ())
                if current == wanted_roles and names == wanted_groups:
                    return Identity(tenant, _user(row), self._group_ids(s, row.id))
        user = self.sso_user(
            tenant.id,
            issuer=issuer,
            subject=subject,
            username=username,
            email=email,
            display_name=display_name,
            roles=wanted_roles,
            groups=wanted_groups,
        )
        return Identity(tenant, user, self.group_ids_of(user.id))

    def whose(self, token: str) -> tuple[str, str]:
        """``(tenant id, actor)`` a refused token claims to be, for the audit trail: its
        tenant's chain when the key or session exists (revoked, expired, disabled), else the
        platform's (``""``, ``anonymous``)."""
        token_hash = ids.hash_api_key(token)
        with self.db.session() as s:
            found = s.execute(
                select(ApiKeyRow.tenant_id, UserRow.kind, UserRow.username)
                .join(UserRow, UserRow.id == ApiKeyRow.user_id)
                .where(ApiKeyRow.key_hash == token_hash)
            ).first()
            if found is None:
                found = s.execute(
                    select(SessionRow.tenant_id, UserRow.kind, UserRow.username)
                    .join(UserRow, UserRow.id == SessionRow.user_id)
                    .where(SessionRow.token_hash == token_hash)
                ).first()
        if found is None:
            return "", "anonymous"
        return found[0], f"{found[1]}:{found[2]}"

    # -- single sign-on logins under way -------------------------------------------------

    def start_login(self, tenant_id: str, *, redirect_uri: str) -> tuple[str, str, str]:
        """``(state, nonce, code_verifier)`` of a new login, kept until its callback."""
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # RFC 7636: 43-128 characters
        with self.db.session() as s:
            s.execute(delete(OidcLoginRow).where(OidcLoginRow.created_at < utcnow() - LOGIN_TTL))
            s.add(
                OidcLoginRow(
                    state=state,
                    tenant_id=tenant_id,
                    nonce=nonce,
                    code_verifier=verifier,
                    redirect_uri=redirect_uri,
                )
            )
        return state, nonce, verifier

    def take_login(self, state: str) -> PendingLogin:
        """The login this state started, consumed (a replayed callback is refused);
        :class:`Unauthorized` when unknown or older than ten minutes."""
        with self.db.session() as s:
            row = s.get(OidcLoginRow, state[:64])
            if row is None:
                raise Unauthorized("unknown or already used sign-in state")
            s.delete(row)
            if row.created_at < utcnow() - LOGIN_TTL:
                raise Unauthorized("the sign-in took too long: start again")
            return PendingLogin(row.tenant_id, row.nonce, row.code_verifier, row.redirect_uri)

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _user_row(s: Session, tenant_id: str, user_id: str) -> UserRow:
        row = s.get(UserRow, user_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no user with id {user_id!r}")
        return row

    @staticmethod
    def _group_row(s: Session, tenant_id: str, group_id: str) -> GroupRow:
        row = s.get(GroupRow, group_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"no group with id {group_id!r}")
        return row

    @staticmethod
    def _group_ids(s: Session, user_id: str) -> tuple[str, ...]:
        return tuple(
            s.scalars(
                select(MembershipRow.group_id)
                .where(MembershipRow.user_id == user_id)
                .distinct()
                .order_by(MembershipRow.group_id)
            )
        )

    @staticmethod
    def _has_admin(s: Session, tenant_id: str) -> bool:
        rows = s.execute(
            select(UserRow.roles, UserRow.sso_roles).where(
                UserRow.tenant_id == tenant_id, UserRow.disabled_at.is_(None)
            )
        )
        return any(Role.ADMIN in (roles or []) + (sso or []) for roles, sso in rows)

    @staticmethod
    def _free_username(s: Session, tenant_id: str, wanted: str) -> str:
        base = (wanted.strip() or "user")[:90]
        taken = set(
            s.scalars(
                select(UserRow.username).where(
                    UserRow.tenant_id == tenant_id,
                    func.lower(UserRow.username).like(
                        conv.escape_like(base.lower()) + "%", escape="\\"
                    ),
                )
            )
        )
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        return name
