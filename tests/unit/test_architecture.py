"""The import rules of ARCHITECTURE.md, checked on the code: a package imports only the packages
listed for it, and only the public modules of ingestion."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = (
    "core",
    "textmodels",
    "stores",
    "runtime",
    "sorting",
    "ingestion",
    "retrieval",
    "evaluation",
    "infra",
    "sources",
    "monitoring",
    "serving",
)
# What each package may import (besides itself), as ARCHITECTURE.md says.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "textmodels": {"core"},
    "stores": {"core"},
    "runtime": {"core", "textmodels", "stores"},
    "sorting": {"core", "textmodels", "stores", "runtime"},
    "ingestion": {"core", "textmodels", "stores", "runtime", "sorting"},
    "retrieval": {"core", "textmodels", "stores", "runtime"},
    "evaluation": {"core", "textmodels", "stores", "runtime", "retrieval", "ingestion", "sorting"},
    "infra": {"core", "textmodels", "stores", "runtime", "ingestion"},
    "sources": {"core", "textmodels", "stores", "runtime", "ingestion"},
    "monitoring": {"core", "textmodels", "stores", "runtime", "retrieval", "evaluation"},
    "serving": set(PACKAGES) - {"serving"},
}
# The modules of ingestion other packages may use; the rest are its internals. serving, the
# composition root, also builds the Celery app and its executor.
INGESTION_PUBLIC = {
    "ingestion.service",
    "ingestion.indexing",
    "ingestion.records",
    "ingestion.access",
    "ingestion.pages",
}
# The modules of sorting other packages may use (its classifier, rules and features are its own).
SORTING_PUBLIC = {"sorting.service", "sorting.fields", "sorting.vocabulary"}
SERVING_ALSO = {"ingestion.celery_app", "ingestion.tasks"}


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                out.append((package, path))
    return out


def test_every_package_imports_only_what_architecture_md_allows() -> None:
    wrong = []
    for package, path in modules():
        for name in imports(path):
            top = name.split(".")[0]
            if top not in PACKAGES or top == package:
                continue
            if top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports {name}")
            elif top == "ingestion":
                public = INGESTION_PUBLIC | (SERVING_ALSO if package == "serving" else set())
                if not any(name == m or name.startswith(m + ".") for m in public):
                    wrong.append(f"{path.relative_to(ROOT)} imports ingestion internal {name}")
            elif top == "sorting" and name != "sorting" and name not in SORTING_PUBLIC:
                wrong.append(f"{path.relative_to(ROOT)} imports sorting internal {name}")
    assert wrong == []


def test_architecture_md_names_every_package() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert all(f"`{p}/`" in text for p in PACKAGES)
