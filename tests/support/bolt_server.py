"""A real Bolt server for the Neo4j graph store's tests, once per test session.

No Neo4j distribution installs here, but ArcadeDB does (PyPI ``arcadedb-embedded``, Apache-2.0,
with its own JRE): its server speaks Bolt through its Neo4j plugin, and the official ``neo4j``
driver, the one production uses, talks to it unchanged. Its Cypher is openCypher, not Neo4j's,
so every statement is also parsed by Neo4j's own parser in the unit tier
(``tests/unit/test_cypher_statements.py``). When ``GEDRAG_NEO4J__URI`` (with
``GEDRAG_NEO4J__USER``, ``__PASSWORD``, ``__DATABASE``) names a server, as in the compose stack,
the same tests run against that real Neo4j instead; they clear its database, so it must be a
throwaway one.

The server runs in a child process (``python -m tests.support.bolt_server``): the JVM that JPype
starts can be neither restarted nor unloaded in the process that started it, and a child takes
its JVM with it when it ends. The child stops its server and exits when its stdin closes, which
the session does at its end and the kernel does when pytest itself dies, so no JVM outlives the
session. Start-up takes ~6 s on an idle machine (12–17 s measured at load 10–13): one server per
session, each test clearing the graph it needs empty.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
from neo4j import GraphDatabase
from pydantic import SecretStr

from core.settings import Neo4jSettings
from stores.graph.neo4j import Neo4jGraphStore
from tests.support.net import free_port

READY = "bolt-server-ready"
DATABASE = "neo4j"  # the default of GEDRAG_NEO4J__DATABASE: settings need no override
START_TIMEOUT_S = 180  # ~6 s idle, 12–17 s at load 10–13 on 2 cores; far more when swamped
STOP_TIMEOUT_S = 30
HEAP = "1g"  # the 1,200-chunk conformance version peaks well below it
ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class BoltServer:
    """Where the Neo4j graph store's tests connect, and as which user."""

    uri: str
    user: str
    password: str
    database: str
    engine: Literal["arcadedb", "neo4j"]

    def settings(self, **overrides: object) -> Neo4jSettings:
        values: dict[str, object] = {
            "uri": self.uri,
            "user": self.user,
            "password": SecretStr(self.password),
            "database": self.database,
        }
        return Neo4jSettings(**(values | overrides))  # type: ignore[arg-type]

    def env(self) -> dict[str, str]:
        """The same, as the environment of a ``gedrag`` process."""
        return {
            "GEDRAG_NEO4J__URI": self.uri,
            "GEDRAG_NEO4J__USER": self.user,
            "GEDRAG_NEO4J__PASSWORD": self.password,
            "GEDRAG_NEO4J__DATABASE": self.database,
        }

    def store(self) -> Neo4jGraphStore:
        """The production adapter on this server, set up (constraints and indexes)."""
        store = Neo4jGraphStore(
            self.uri, user=self.user, password=self.password, database=self.database
        )
        store.setup()
        return store

    def run(self, statement: str, **params: object) -> list[dict[str, object]]:
        """One statement in its own transaction (tests inject drift and look behind the store)."""
        with GraphDatabase.driver(self.uri, auth=(self.user, self.password)) as driver:
            records, _, _ = driver.execute_query(statement, params, database_=self.database)
            return [r.data() for r in records]

    def clear(self) -> None:
        """Remove every node and relationship (constraints and indexes stay)."""
        self.run("MATCH (n) DETACH DELETE n")


@contextmanager
def arcadedb_bolt_server(
    workdir: Path | None = None, *, timeout_s: float = START_TIMEOUT_S
) -> Iterator[BoltServer]:
    """An ArcadeDB server with its Bolt plugin on free loopback ports, in a child process, with
    an empty database named ``neo4j``. Everything (process, JVM, files) is gone on exit, also
    when the start failed; a failed start raises :class:`RuntimeError` with the server's log."""
    root = Path(tempfile.mkdtemp(prefix="gedrag-arcadedb-", dir=workdir))
    password = f"gedrag-{uuid.uuid4().hex[:12]}"
    bolt = free_port()
    log_path = root / "server.log"
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "GEDRAG_TEST_ARCADEDB_PASSWORD": password}
    command = [sys.executable, "-m", "tests.support.bolt_server", str(root / "server"), str(bolt)]
    command += [str(free_port()), str(free_port())]
    with log_path.open("wb") as log:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,  # ArcadeDB writes ./log there
            env=env,
        )
    try:
        _wait_ready(child, log_path, timeout_s)
        yield BoltServer(f"bolt://127.0.0.1:{bolt}", "root", password, DATABASE, "arcadedb")
    finally:
        _stop(child)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(child: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if READY in text:
            return
        if child.poll() is not None:
            break
        time.sleep(0.1)
    ended = child.poll()
    state = f"exited with status {ended}" if ended is not None else f"not ready in {timeout_s:g} s"
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-30:])
    raise RuntimeError(f"the ArcadeDB Bolt server did not start ({state}):\n{tail}")


def _stop(child: subprocess.Popen[bytes]) -> None:
    """Close the child's stdin (it stops its server), then kill it if it lingers."""
    if child.stdin is not None:
        child.stdin.close()
    try:
        child.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def neo4j_server() -> Iterator[BoltServer]:
    """The session's Bolt server: the Neo4j named by ``GEDRAG_NEO4J__URI``, else ArcadeDB's,
    started once. Unavailable: its tests skip, or fail under GEDRAG_TEST_REQUIRE_SERVICES=1."""
    from tests.conftest import REQUIRE_SERVICES

    uri = os.environ.get("GEDRAG_NEO4J__URI")
    if uri:
        yield BoltServer(
            uri,
            os.environ.get("GEDRAG_NEO4J__USER", "neo4j"),
            os.environ.get("GEDRAG_NEO4J__PASSWORD", ""),
            os.environ.get("GEDRAG_NEO4J__DATABASE", DATABASE),
            "neo4j",
        )
        return
    started = ExitStack()
    try:
        import arcadedb_embedded  # noqa: F401

        server = started.enter_context(arcadedb_bolt_server())
    except (ImportError, RuntimeError) as exc:
        message = f"no Bolt server for the Neo4j graph store's tests: {exc}"
        if isinstance(exc, ImportError):
            message += " (install the dev extra: pip install -e '.[dev]')"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    with started:
        yield server


@pytest.fixture
def neo4j(neo4j_server: BoltServer) -> BoltServer:
    """The session's Bolt server with an empty graph: a migration or a verification reads every
    document the store holds, so another test's leftovers would be drift."""
    neo4j_server.clear()
    return neo4j_server


def main() -> None:
    """The child: create the database, serve it over Bolt until stdin closes."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root", type=Path)
    parser.add_argument("bolt_port", type=int)
    parser.add_argument("http_port", type=int)
    parser.add_argument("https_port", type=int)
    args = parser.parse_args()
    import arcadedb_embedded as arcadedb

    # The database first: the server serves the databases it finds under root/databases.
    database = arcadedb.create_database(
        str(args.root / "databases" / DATABASE), jvm_kwargs={"heap_size": HEAP}
    )
    database.close()
    server = arcadedb.create_server(
        str(args.root),
        root_password=os.environ["GEDRAG_TEST_ARCADEDB_PASSWORD"],
        config={
            "http_port": args.http_port,
            "server_httpsIncomingPort": args.https_port,
            "server_plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "bolt_port": args.bolt_port,
        },
    )
    server.start()
    try:
        print(READY, flush=True)
        sys.stdin.read()  # returns when the session closes stdin, or when pytest dies
    finally:
        server.stop()


if __name__ == "__main__":
    main()
