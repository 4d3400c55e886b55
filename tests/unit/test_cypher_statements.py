"""Every Cypher statement the Neo4j graph store can send, checked by Neo4j's own parser.

The integration tier runs the statements on ArcadeDB's Bolt server, whose openCypher is not
Neo4j's Cypher: a statement ArcadeDB accepts may still be one Neo4j refuses. Here each statement
of ``stores.graph.neo4j.STATEMENTS`` goes through Neo4j's grammar and semantic analysis (npm
``@neo4j-cypher/language-support``, installed by ``infra/dev/cypher.sh``) under Cypher 5 and
Cypher 25, and must come back with no error and no warning (a deprecation is a statement that a
later Neo4j refuses). A test also proves that the registry holds every Cypher text of the module,
so a statement added outside it cannot escape the check.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stores.graph import neo4j as adapter
from tests.conftest import REQUIRE_SERVICES

pytestmark = pytest.mark.unit

CHECKER = Path(__file__).resolve().parents[2] / "infra" / "dev" / "cypher"
PACKAGE = CHECKER / "node_modules" / "@neo4j-cypher" / "language-support"
INSTALL = "`make cypher` (bash infra/dev/cypher.sh; needs Node.js >= 20 and npm)"
VERSIONS = {"CYPHER 5", "CYPHER 25"}
# A clause keyword at the start of a line or of the text: how Cypher looks in this module.
CLAUSES = ("MATCH", "MERGE", "CREATE", "UNWIND", "OPTIONAL MATCH", "WITH", "RETURN", "CALL")


def check(statements: dict[str, str]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``(name, Cypher version) → diagnostics`` from Neo4j's parser, one Node process for all."""
    node = shutil.which("node")
    if node is None or not PACKAGE.is_dir():
        message = f"Neo4j's Cypher parser is not installed: run {INSTALL}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    done = subprocess.run(
        [node, str(CHECKER / "check.cjs")],
        input=json.dumps(statements),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return {(r["name"], r["version"]): r["diagnostics"] for r in json.loads(done.stdout)}


def test_every_statement_of_the_neo4j_store_parses_in_neo4j() -> None:
    broken = {
        "broken: syntax": "MATCH (c:Chunk {id: $id) RETURN c",
        "broken: semantics": "MATCH (c:Chunk {id: $id}) RETURN d.id AS id",
        # The importing WITH that `CALL (x) { ... }` (in _EXPAND) replaced.
        "broken: deprecated": "MATCH (c:Chunk) CALL { WITH c RETURN c.id AS x } RETURN x",
    }
    found = check({**adapter.STATEMENTS, **broken})
    assert {name for name, _ in found} == set(adapter.STATEMENTS) | set(broken)
    assert {version for _, version in found} == VERSIONS
    refused = {
        f"{name} ({version})": [f"{d['line']}:{d['column']} {d['message']}" for d in diagnostics]
        for (name, version), diagnostics in found.items()
        if diagnostics and not name.startswith("broken")
    }
    assert refused == {}
    # The checker does refuse: a syntax error, an unknown variable (errors: severity 1) and a
    # deprecated form (a warning: severity 2).
    for version in VERSIONS:
        assert found["broken: syntax", version][0]["severity"] == 1
        messages = [d["message"] for d in found["broken: semantics", version]]
        assert any("Variable `d` not defined" in m for m in messages), messages
        deprecated = found["broken: deprecated", version]
        assert [d["severity"] for d in deprecated] == [2]
        assert "scope clause is deprecated" in deprecated[0]["message"]


def test_the_registry_holds_every_statement_the_adapter_sends() -> None:
    """Every ``run`` / ``_read`` call of the module sends a registered statement, every registered
    statement is sent, and no other string literal of the module reads as Cypher."""
    tree = ast.parse(Path(adapter.__file__).read_text())
    loops = {
        loop.target.id: loop.iter.id
        for loop in ast.walk(tree)
        if isinstance(loop, ast.For)
        and isinstance(loop.target, ast.Name)
        and isinstance(loop.iter, ast.Name)
    }
    # `_read(what, query, ...)` hands its `query` on to the driver: its callers are checked.
    relayed = {
        a.arg
        for f in ast.walk(tree)
        if isinstance(f, ast.FunctionDef) and f.name == "_read"
        for a in f.args.args
    }
    sent: set[str] = set()
    for call in ast.walk(tree):
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)):
            continue
        position = {"run": 0, "_read": 1}.get(call.func.attr)
        if position is None:
            continue
        arg = call.args[position]
        assert isinstance(arg, ast.Name), f"not a registered statement: {ast.unparse(call)}"
        if arg.id in relayed and call.func.attr == "run":
            continue
        value = vars(adapter)[loops.get(arg.id, arg.id)]
        sent.update(value if isinstance(value, tuple) else [value])
    assert sent == set(adapter.STATEMENTS.values())

    registered = "\n".join(adapter.STATEMENTS.values())
    cypher_like = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and any(line.strip().startswith(CLAUSES) for line in node.value.splitlines())
    ]
    assert cypher_like and [t for t in cypher_like if t not in registered] == []
