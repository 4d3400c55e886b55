"""``gedrag users|groups|audit|access ...``: people, the audit trail and access lists, as the
operator, on the catalog directly.

Every command but ``access resync`` opens the catalog alone, so it runs beside ``gedrag up``
(``audit verify`` too: it only reads). Changes made here are audited with the actor ``cli``.
``gedrag audit verify`` exits 1 when a chain is broken, naming each entry where it breaks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.errors import GedragError

if TYPE_CHECKING:
    from stores.catalog import Catalog

ACTOR = "cli"

users = typer.Typer(help="Users and service accounts of a tenant.", no_args_is_help=True)
groups = typer.Typer(help="Groups of a tenant.", no_args_is_help=True)
audit = typer.Typer(
    help="The audit trail: verify its hash chains, export it.", no_args_is_help=True
)
access = typer.Typer(help="Access lists.", no_args_is_help=True)

console = Console()
err = Console(stderr=True)

Tenant = Annotated[str, typer.Argument(help="Tenant name.")]
Roles = Annotated[
    list[str] | None, typer.Option("--role", help="admin, editor, reader, promoter (repeat).")
]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(1)


@contextmanager
def _catalog() -> Iterator[Catalog]:
    from core.settings import get_settings
    from stores.catalog import Catalog

    catalog = Catalog(get_settings().catalog_url)
    try:
        catalog.migrate()
        yield catalog
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    finally:
        catalog.dispose()


def _tenant_id(catalog: Catalog, name: str) -> str:
    return catalog.tenants.get(name).id


def _password() -> str:
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


# -- users --------------------------------------------------------------------------------


@users.command("create")
def users_create(
    tenant: Tenant,
    username: str,
    role: Roles = None,
    service: Annotated[bool, typer.Option(help="A service account (keys only).")] = False,
    password: Annotated[bool, typer.Option(help="Ask for a password (local sign-in).")] = False,
) -> None:
    """Create a user (reader unless --role says otherwise)."""
    from core.access import UserKind

    with _catalog() as catalog:
        tid = _tenant_id(catalog, tenant)
        user = catalog.people.create_user(
            tid,
            username,
            roles=role or ["reader"],
            kind=UserKind.SERVICE if service else UserKind.USER,
            password=_password() if password else None,
        )
        catalog.audit.append(tid, ACTOR, "user.create", user.id, "done", {"username": username})
    console.print(f"user {user.username!r} created: {user.id} ({', '.join(sorted(user.roles))})")


@users.command("list")
def users_list(tenant: Tenant) -> None:
    with _catalog() as catalog:
        found = catalog.people.users(_tenant_id(catalog, tenant))
    table = Table("id", "username", "kind", "roles", "sign-in", "disabled")
    for u in found:
        how = ", ".join(x for x, on in (("password", u.has_password), ("sso", u.sso)) if on)
        table.add_row(
            u.id,
            u.username,
            u.kind.value,
            ", ".join(sorted(u.roles)),
            how or "keys",
            str(u.disabled),
        )
    console.print(table)


def _change(tenant: str, username: str, action: str, **changes: object) -> None:
    with _catalog() as catalog:
        tid = _tenant_id(catalog, tenant)
        user = catalog.people.user_named(tid, username)
        catalog.people.update_user(tid, user.id, **changes)  # type: ignore[arg-type]
        catalog.audit.append(tid, ACTOR, action, user.id, "done", {"username": username})
    console.print(f"user {username!r}: {action}")


@users.command("disable")
def users_disable(tenant: Tenant, username: str) -> None:
    """Refuse the user's keys and sessions from the next request."""
    _change(tenant, username, "user.disable", disabled=True)


@users.command("enable")
def users_enable(tenant: Tenant, username: str) -> None:
    _change(tenant, username, "user.enable", disabled=False)


@users.command("roles")
def users_roles(tenant: Tenant, username: str, role: Roles = None) -> None:
    """Replace the roles granted in gedrag (single sign-on roles come from the provider)."""
    _change(tenant, username, "user.change", roles=role or [])


@users.command("password")
def users_password(tenant: Tenant, username: str) -> None:
    """Set a user's password (asked twice, never an argument)."""
    with _catalog() as catalog:
        tid = _tenant_id(catalog, tenant)
        user = catalog.people.user_named(tid, username)
        catalog.people.set_password(tid, user.id, _password())
        catalog.audit.append(tid, ACTOR, "user.password", user.id, "done", {})
    console.print(f"password of {username!r} set")


# -- groups -------------------------------------------------------------------------------


@groups.command("create")
def groups_create(tenant: Tenant, name: str) -> None:
    with _catalog() as catalog:
        tid = _tenant_id(catalog, tenant)
        group = catalog.people.create_group(tid, name)
        catalog.audit.append(tid, ACTOR, "group.create", group.id, "done", {"name": name})
    console.print(f"group {name!r} created: {group.id}")


@groups.command("list")
def groups_list(tenant: Tenant) -> None:
    with _catalog() as catalog:
        tid = _tenant_id(catalog, tenant)
        found = catalog.people.groups(tid)
        names = {u.id: u.username for u in catalog.people.users(tid)}
    table = Table("id", "name", "origin", "members")
    for g in found:
        table.add_row(g.id, g.name, g.origin, ", ".join(names.get(m, m) for m in g.member_ids))
    console.print(table)


@groups.command("members")
def groups_members(
    tenant: Tenant,
    name: str,
    usernames: Annotated[list[str] | None, typer.Argument(help="Its members, all of them.")] = None,
) -> None:
    """Replace the members granted in gedrag."""
    with _catalog() as catalog:
        tid = _tenant_id(catalog, tenant)
        group = catalog.people.group_named(tid, name)
        ids = [catalog.people.user_named(tid, u).id for u in usernames or []]
        catalog.people.set_members(tid, group.id, ids)
        catalog.audit.append(tid, ACTOR, "group.members", group.id, "done", {"members": ids})
    console.print(f"group {name!r}: {len(ids)} member(s)")


# -- the audit trail ----------------------------------------------------------------------


@audit.command("verify")
def audit_verify(
    tenant: Annotated[str | None, typer.Argument(help="Tenant name; none: every chain.")] = None,
) -> None:
    """Recompute the hash chains; exit 1 naming each entry where one breaks."""
    with _catalog() as catalog:
        report = catalog.audit.verify(None if tenant is None else _tenant_id(catalog, tenant))
    if report.ok:
        console.print(f"audit trail intact: {report.entries} entries in {report.tenants} chain(s)")
        return
    for b in report.breaks:
        err.print(
            f"[red]broken[/red] chain {b.tenant_id or '(platform)'} entry {b.seq} "
            f"({b.entry_id}): {b.reason}"
        )
    raise typer.Exit(1)


@audit.command("export")
def audit_export(
    tenant: Tenant,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    action: Annotated[str | None, typer.Option(help="An action, or a prefix: document.*")] = None,
) -> None:
    """The tenant's trail, oldest first, to stdout."""
    from stores.catalog.audit import AuditQuery, export_lines

    if fmt not in ("jsonl", "csv"):
        raise _fail("--format is jsonl or csv")
    with _catalog() as catalog:
        entries = catalog.audit.scan(_tenant_id(catalog, tenant), AuditQuery(action=action))
        for line in export_lines(entries, fmt):
            sys.stdout.write(line)


# -- access lists -------------------------------------------------------------------------


@access.command("resync")
def access_resync(
    tenant: Annotated[str | None, typer.Argument(help="Tenant name; none: every tenant.")] = None,
) -> None:
    """Write every document's readers into the graph store again (after a failure, or after
    a graph migration). Opens the stores: in the embedded mode, while `gedrag up` is stopped."""
    from core.settings import get_settings
    from ingestion.access import AccessService
    from runtime import Runtime

    try:
        rt = Runtime.build(get_settings())
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    try:
        tid = None if tenant is None else rt.catalog.tenants.get(tenant).id
        done = AccessService(rt).resync(tid)
    except GedragError as exc:
        raise _fail(exc.detail) from exc
    finally:
        rt.close()
    console.print(f"readers of {done} document(s) written to the graph store")
