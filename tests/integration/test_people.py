"""People, access lists and the audit trail in the catalog (issue #19), on SQLite and on the real
PostgreSQL server: the 0011 upgrade of a catalog holding keys, audit entries and graph documents
(nothing loses access), passwords, single sign-on users, keys and sessions, the access lists
enforced inside the catalog's queries, and the hash chain under concurrent writers and
tampering."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from core import ids
from core.access import EVERYONE, ResourceKind, Role, Scope, UserKind
from core.domain import DocumentFilter
from core.errors import Conflict, InvalidInput, Unauthorized
from stores.catalog import Catalog, NewVersion
from stores.catalog.database import MIGRATIONS

pytestmark = pytest.mark.integration


@pytest.fixture
def catalog(catalog_url: str) -> Catalog:
    cat = Catalog(catalog_url)
    cat.migrate()
    yield cat
    cat.dispose()


def _alembic(catalog: Catalog, target: str, *, down: bool = False) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with catalog.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(cfg, target)


def test_the_0011_upgrade_keeps_every_key_working_and_chains_the_trail(catalog_url: str) -> None:
    catalog = Catalog(catalog_url)
    try:
        _alembic(catalog, "0010")
        key, key_hash = ids.new_api_key()
        tenant = ids.tenant_id("acme")
        with catalog.engine.begin() as conn:
            conn.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES (:t, 'acme', :now)"),
                {"t": tenant, "now": "2026-01-01 00:00:00"},
            )
            conn.execute(
                sa.text(
                    "INSERT INTO api_keys (id, tenant_id, name, prefix, key_hash, created_at) "
                    "VALUES ('k1', :t, 'intern', :p, :h, '2026-01-01 00:00:00')"
                ),
                {"t": tenant, "p": key[:12], "h": key_hash},
            )
            for i in range(3):
                conn.execute(
                    sa.text(
                        "INSERT INTO records_audit (id, tenant_id, at, actor, action, target, "
                        "outcome, detail) VALUES (:id, :t, :at, 'key:intern:x', 'trash', 'd', "
                        "'done', :detail)"
                    ),
                    {
                        "id": f"a{i}",
                        "t": tenant,
                        "at": f"2026-01-0{i + 1} 10:00:00.12345{i}",
                        "detail": json.dumps({"n": i}),
                    },
                )
            conn.execute(
                sa.text(
                    "INSERT INTO graph_documents (id, tenant_id, title) VALUES ('d1', :t, 'D')"
                ),
                {"t": tenant},
            )
        catalog.migrate()

        who = catalog.people.identify(key)  # the key still opens its tenant
        assert (who.tenant.name, who.user.username, who.key_scopes) == (
            "acme",
            "admin",
            frozenset({Scope.LEGACY}),
        )
        assert who.user.roles == {Role.ADMIN, Role.PROMOTER}
        trail = catalog.audit.trail(tenant, None)
        assert [e.seq for e in trail] == [3, 2, 1] and [e.id for e in trail] == ["a2", "a1", "a0"]
        report = catalog.audit.verify()
        assert report.ok and report.entries == 3
        catalog.audit.append(tenant, "user:admin", "document.view", "d1")
        assert catalog.audit.verify().ok and catalog.audit.trail(tenant, None)[0].seq == 4
        with catalog.engine.connect() as conn:
            readers = conn.execute(sa.text("SELECT principal FROM graph_readers")).scalars().all()
        assert readers == [EVERYONE]

        _alembic(catalog, "0010", down=True)
        tables = set(sa.inspect(catalog.engine).get_table_names())
        assert not tables & {"users", "user_groups", "access_entries", "audit_heads"}
        catalog.migrate()  # and up again, on the data the downgrade kept
        assert catalog.people.identify(key).tenant.name == "acme"
        assert catalog.audit.verify().ok
    finally:
        catalog.dispose()


def test_passwords_single_sign_on_keys_and_sessions(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme")
    people = catalog.people
    ana = people.create_user(t.id, "ana", roles=["editor"], password="correct horse 1")
    with catalog.engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct" not in stored
    assert people.check_password(t.id, "ana", "correct horse 1").id == ana.id
    for name, password in (("ana", "wrong password"), ("nobody", "correct horse 1")):
        with pytest.raises(Unauthorized, match="unknown user or wrong password"):
            people.check_password(t.id, name, password)
    with pytest.raises(InvalidInput, match="10 to 1024"):
        people.create_user(t.id, "short", password="123")
    with pytest.raises(Conflict):
        people.create_user(t.id, "ana")
    robot = people.create_user(t.id, "ci", kind=UserKind.SERVICE, roles=["reader"])
    with pytest.raises(InvalidInput):
        people.set_password(t.id, robot.id, "a long password")

    key, info = people.create_key(t.id, ana.id, "laptop", ["read", "write"])
    assert info.scopes == ("read", "write") and info.user_id == ana.id
    assert people.identify(key).key_scopes == {Scope.READ, Scope.WRITE}
    with pytest.raises(InvalidInput, match="legacy"):
        people.create_key(t.id, ana.id, "x", ["legacy"])
    session, _ = people.create_session(
        ana, method="password", source="1.2.3.4", ttl=timedelta(hours=1)
    )
    assert people.identify(session).session_method == "password"
    people.update_user(t.id, ana.id, disabled=True)
    for token in (key, session):
        with pytest.raises(Unauthorized, match="disabled"):
            people.identify(token)
    assert people.whose(key) == (t.id, "user:ana")
    assert people.whose("gdr_unknown") == ("", "anonymous")
    people.update_user(t.id, ana.id, disabled=False)
    people.revoke_key(t.id, info.id)
    with pytest.raises(Unauthorized, match="revoked"):
        people.identify(key)
    expiring, _ = people.create_key(
        t.id, ana.id, "old", ["read"], expires_at=catalog_now() - timedelta(seconds=1)
    )
    with pytest.raises(Unauthorized, match="expired"):
        people.identify(expiring)

    # Single sign-on: groups from the claim, replaced at each sign-in; local ones stay.
    profile = {
        "issuer": "https://idp",
        "subject": "s-1",
        "username": "ana",
        "email": "a@x",
        "display_name": "Ana",
        "roles": {Role.READER},
    }
    bo = people.sso_user(t.id, groups=["HR", "Paris"], **profile)
    assert bo.username == "ana-2" and bo.sso  # "ana" is taken by the local account
    local = people.create_group(t.id, "Board")
    people.set_members(t.id, local.id, [bo.id])
    names = lambda: {g.name for g in people.groups(t.id) if bo.id in g.member_ids}  # noqa: E731
    assert names() == {"HR", "Paris", "Board"}
    again = people.sso_user(t.id, groups=["HR"], **profile)
    assert again.id == bo.id and names() == {"HR", "Board"}
    identity = people.sso_identity(t, groups=["HR"], **profile)
    assert set(identity.group_ids) == {people.group_named(t.id, "HR").id, local.id}
    assert {g.origin for g in people.groups(t.id) if g.name == "HR"} == {"sso"}

    # The last enabled administrator stays.
    owner = people.owner(t.id)
    with pytest.raises(Conflict, match="administrator"):
        people.update_user(t.id, owner.id, roles=["reader"])
    people.update_user(t.id, ana.id, roles=["admin"])
    assert Role.READER in people.update_user(t.id, owner.id, roles=["reader"]).roles


def catalog_now():  # type: ignore[no-untyped-def]
    from stores.catalog.models import utcnow

    return utcnow()


def _doc(catalog: Catalog, tenant: str, collection: str, text: str) -> str:
    doc, _ = catalog.documents.create(
        tenant,
        collection,
        title=text,
        tags=[],
        metadata={},
        version=NewVersion(ids.sha256_hex(text.encode()), len(text), "text/plain", "a.txt"),
    )
    return doc.id


def test_access_lists_hold_inside_the_catalogs_queries(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    hr = catalog.people.create_group(t, "HR")
    legal = catalog.people.create_group(t, "Legal")
    memo = _doc(catalog, t, "default", "memo")
    pay = _doc(catalog, t, "payslips", "payslip")
    pay2 = _doc(catalog, t, "payslips", "payslip two")
    coll = ids.collection_id(t, "payslips")
    catalog.access.set(t, ResourceKind.COLLECTION, coll, [("group:HR", "read")], by="test")
    as_legal = (EVERYONE, "user:u-legal", f"group:{legal.id}")
    as_hr = (EVERYONE, "user:u-hr", f"group:{hr.id}")

    def listed(principals: tuple[str, ...] | None) -> set[str]:
        page = catalog.documents.page(
            t, DocumentFilter(readable_by=principals), cursor=None, limit=50
        )
        return {d.id for d in page.items}

    assert listed(as_legal) == {memo}
    assert listed(as_hr) == {memo, pay, pay2}
    assert listed(None) == {memo, pay, pay2}
    counts = {c.name: c.document_count for c in catalog.collections.of_tenant(t, as_legal)}
    assert counts == {"default": 1}
    assert {c.name: c.document_count for c in catalog.collections.of_tenant(t, as_hr)} == {
        "default": 1,
        "payslips": 2,
    }
    # One payslip also to Legal (added to the collection's), one to Legal alone (replacing it).
    catalog.access.set(t, ResourceKind.DOCUMENT, pay, [(f"group:{legal.id}", "read")], by="test")
    catalog.access.set(
        t, ResourceKind.DOCUMENT, pay2, [("group:Legal", "read")], inherit=False, by="test"
    )
    assert listed(as_legal) == {memo, pay, pay2}
    assert listed(as_hr) == {memo, pay}
    assert catalog.access.readers(t, [pay, pay2, memo]) == {
        pay: tuple(sorted((f"group:{hr.id}", f"group:{legal.id}"))),
        pay2: (f"group:{legal.id}",),
        memo: (EVERYONE,),
    }
    assert set(catalog.access.restricted_documents(t)) == {pay, pay2}
    assert catalog.access.documents_of(t, ResourceKind.COLLECTION, coll) == sorted([pay, pay2])
    with pytest.raises(InvalidInput, match="principal"):
        catalog.access.set(t, ResourceKind.DOCUMENT, pay, [("HR", "read")], by="test")
    with pytest.raises(InvalidInput, match="permission"):
        catalog.access.set(t, ResourceKind.DOCUMENT, pay, [("everyone", "own")], by="test")
    # Another tenant's group is no principal here.
    other = catalog.tenants.create("globex").id
    theirs = catalog.people.create_group(other, "Spies")
    with pytest.raises(Exception, match="no group"):
        catalog.access.set(t, ResourceKind.DOCUMENT, pay, [(f"group:{theirs.id}", "read")], by="x")


def test_the_chain_holds_under_concurrent_writers_and_shows_tampering(catalog: Catalog) -> None:
    t = catalog.tenants.create("acme").id
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(25):
                catalog.audit.append(t, f"user:w{n}", "document.view", f"d{i}", detail={"i": i})
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    report = catalog.audit.verify(t)
    assert report.ok and report.entries == 100
    assert [e.seq for e in catalog.audit.trail(t, None, limit=1000)] == list(range(100, 0, -1))

    with catalog.engine.begin() as conn, pytest.raises(sa.exc.DBAPIError):
        conn.execute(sa.text("DELETE FROM records_audit WHERE seq = 50"))
    # Whoever can drop the triggers is still caught: a middle entry gone, the last one gone.
    with catalog.engine.begin() as conn:
        if catalog.is_sqlite:
            conn.execute(sa.text("DROP TRIGGER records_audit_no_delete"))
        else:
            conn.execute(sa.text("DROP TRIGGER records_audit_no_delete ON records_audit"))
        conn.execute(sa.text("DELETE FROM records_audit WHERE seq IN (50, 100)"))
    reasons = {b.seq: b.reason for b in catalog.audit.verify(t).breaks}
    assert "entries removed" in reasons[51] and "head records entry 100" in reasons[99]
