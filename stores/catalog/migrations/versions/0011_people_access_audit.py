"""people and permissions (issue #19): users, groups, sessions, single sign-on logins, access
lists on collections and documents, the embedded graph's copy of each document's readers; API
keys belong to a user; the audit trail becomes a hash chain per tenant, append-only

Upgrade: every tenant gets one administrator user, ``admin`` (roles admin and promoter, no
password: it signs in with its keys, or an operator sets one with `gedrag users password`), and
every existing key becomes that user's with the scope ``legacy``, which does what the key could
do before (core.access.legacy_scopes), so nothing loses or gains access. The existing audit
entries are chained in their order (time, id). Every document of the embedded graph is
everyone's, as it was.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-15 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from core import ids
from core.access import GENESIS, audit_fields, chain_hash

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

APPEND_ONLY = "the audit trail is append-only"
# SQLite: one trigger per refused statement. PostgreSQL: one function, two triggers.
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER records_audit_no_{verb.lower()} BEFORE {verb} ON records_audit "
    f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
]
PG_FUNCTION = f"""
CREATE OR REPLACE FUNCTION records_audit_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '{APPEND_ONLY}';
END;
$$ LANGUAGE plpgsql
"""
PG_TRIGGERS = [
    f"CREATE TRIGGER records_audit_no_{verb.lower()} BEFORE {verb} ON records_audit "
    "FOR EACH ROW EXECUTE FUNCTION records_audit_append_only()"
    for verb in ("UPDATE", "DELETE")
]


def _sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(length=200), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("sso_roles", sa.JSON(), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("oidc_issuer", sa.String(length=300), nullable=True),
        sa.Column("oidc_subject", sa.String(length=300), nullable=True),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "username"),
        sa.UniqueConstraint("tenant_id", "oidc_issuer", "oidc_subject", name="uq_users_oidc"),
    )
    op.create_table(
        "user_groups",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "name"),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(["group_id"], ["user_groups.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("group_id", "user_id", "origin"),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index("ix_group_members_user", ["user_id"], unique=False)
    op.create_table(
        "auth_sessions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_auth_sessions_user_id", ["user_id"], unique=False)
    op.create_table(
        "oidc_logins",
        sa.Column("state", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("state"),
    )
    op.create_table(
        "access_lists",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("inherit", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("kind", "resource_id"),
    )
    op.create_table(
        "access_entries",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("resource_id", sa.String(length=36), nullable=False),
        sa.Column("principal", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("permission", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("kind", "resource_id", "principal"),
    )
    with op.batch_alter_table("access_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_access_entries_principal", ["resource_id", "principal"], unique=False
        )
    op.create_table(
        "graph_readers",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("principal", sa.String(length=48), nullable=False),
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("document_id", "principal"),
    )
    with op.batch_alter_table("graph_readers", schema=None) as batch_op:
        batch_op.create_index(
            "ix_graph_readers_principal", ["tenant_id", "principal"], unique=False
        )
    # Before access lists existed every document was everyone's.
    op.execute(
        "INSERT INTO graph_readers (document_id, principal, tenant_id) "
        "SELECT id, 'everyone', tenant_id FROM graph_documents"
    )
    op.create_table(
        "audit_heads",
        sa.Column("tenant_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id"),
    )

    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("scopes", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch_op.create_index("ix_api_keys_user_id", ["user_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_api_keys_user_id", "users", ["user_id"], ["id"], ondelete="CASCADE"
        )
    _owners_for_existing_keys()
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.alter_column("scopes", existing_type=sa.JSON(), nullable=False)

    with op.batch_alter_table("records_audit", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("source", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("via", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
    _chain_existing_entries()
    with op.batch_alter_table("records_audit", schema=None) as batch_op:
        for name in ("seq", "source", "via", "prev_hash", "hash"):
            batch_op.alter_column(name, nullable=False)
        batch_op.create_unique_constraint("uq_records_audit_seq", ["tenant_id", "seq"])
    # After every batch operation: SQLite's batch mode copies the table, dropping triggers.
    if _sqlite():
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute(PG_FUNCTION)
        for statement in PG_TRIGGERS:
            op.execute(statement)


def _owners_for_existing_keys() -> None:
    """One administrator per tenant that has keys, owning them all with the ``legacy`` scope."""
    bind = op.get_bind()
    now = datetime.now(UTC).replace(tzinfo=None)
    users = sa.table(
        "users",
        *(sa.column(c) for c in ("id", "tenant_id", "username", "display_name", "email")),
        *(sa.column(c) for c in ("kind", "created_at", "updated_at")),
        sa.column("roles", sa.JSON()),
        sa.column("sso_roles", sa.JSON()),
    )
    keys = sa.table(
        "api_keys", sa.column("tenant_id"), sa.column("user_id"), sa.column("scopes", sa.JSON())
    )
    tenants = [r[0] for r in bind.execute(sa.text("SELECT DISTINCT tenant_id FROM api_keys"))]
    for tenant_id in tenants:
        user_id = ids.stable_uuid("user", tenant_id, "admin")
        bind.execute(
            users.insert().values(
                id=user_id,
                tenant_id=tenant_id,
                username="admin",
                display_name="Administrator",
                email="",
                kind="user",
                roles=["admin", "promoter"],
                sso_roles=[],
                created_at=now,
                updated_at=now,
            )
        )
        bind.execute(
            keys.update()
            .where(keys.c.tenant_id == tenant_id)
            .values(user_id=user_id, scopes=["legacy"])
        )


def _chain_existing_entries() -> None:
    bind = op.get_bind()
    audit = sa.table(
        "records_audit",
        *(sa.column(c) for c in ("id", "tenant_id", "actor", "action", "target", "outcome")),
        *(sa.column(c) for c in ("seq", "source", "via", "prev_hash", "hash")),
        sa.column("at", sa.DateTime()),
        sa.column("detail", sa.JSON()),
    )
    heads = sa.table("audit_heads", sa.column("tenant_id"), sa.column("seq"), sa.column("hash"))
    rows = (
        bind.execute(sa.select(audit).order_by(audit.c.tenant_id, audit.c.at, audit.c.id))
        .mappings()
        .all()
    )
    last: dict[str, tuple[int, str]] = {}
    for row in rows:
        seq, prev = last.get(row["tenant_id"], (0, GENESIS))
        seq += 1
        entry: dict[str, Any] = audit_fields(
            entry_id=row["id"],
            tenant_id=row["tenant_id"],
            seq=seq,
            at=row["at"],
            actor=row["actor"],
            via="",
            source="",
            action=row["action"],
            target=row["target"],
            outcome=row["outcome"],
            detail=row["detail"] or {},
        )
        digest = chain_hash(prev, entry)
        bind.execute(
            audit.update()
            .where(audit.c.id == row["id"])
            .values(seq=seq, source="", via="", prev_hash=prev, hash=digest)
        )
        last[row["tenant_id"]] = (seq, digest)
    for tenant_id, (seq, digest) in last.items():
        bind.execute(heads.insert().values(tenant_id=tenant_id, seq=seq, hash=digest))


def downgrade() -> None:
    on_table = "" if _sqlite() else " ON records_audit"
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS records_audit_no_{verb}{on_table}")
    if not _sqlite():
        op.execute("DROP FUNCTION IF EXISTS records_audit_append_only()")
    with op.batch_alter_table("records_audit", schema=None) as batch_op:
        batch_op.drop_constraint("uq_records_audit_seq", type_="unique")
        for name in ("hash", "prev_hash", "via", "source", "seq"):
            batch_op.drop_column(name)
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_constraint("fk_api_keys_user_id", type_="foreignkey")
        batch_op.drop_index("ix_api_keys_user_id")
        for name in ("expires_at", "scopes", "user_id"):
            batch_op.drop_column(name)
    op.drop_table("audit_heads")
    with op.batch_alter_table("graph_readers", schema=None) as batch_op:
        batch_op.drop_index("ix_graph_readers_principal")
    op.drop_table("graph_readers")
    with op.batch_alter_table("access_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_access_entries_principal")
    op.drop_table("access_entries")
    op.drop_table("access_lists")
    op.drop_table("oidc_logins")
    with op.batch_alter_table("auth_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_auth_sessions_user_id")
    op.drop_table("auth_sessions")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index("ix_group_members_user")
    op.drop_table("group_members")
    op.drop_table("user_groups")
    op.drop_table("users")
