"""`gedrag eval` and `gedrag release` as a user runs them, each command its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SUITE = str(FIXTURES / "eval_suite" / "suite.yaml")


def test_eval_run_compare_and_promote_from_the_command_line(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GEDRAG_DATA_DIR": str(tmp_path / "var"),
        "COLUMNS": "200",
        "PYTHONPATH": str(REPO),
    }
    env.pop("GEDRAG_CATALOG__URL", None)

    def gedrag(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "serving.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )

    worse = gedrag("eval", "run", "--release", "dense-top1", "--suite", SUITE)
    assert worse.returncode == 0, worse.stderr
    assert "8 documents, 9 questions" in worse.stdout
    assert "recall@k" in worse.stdout and "0.5000" in worse.stdout
    reports = sorted((tmp_path / "var" / "reports").glob("*/report.html"))
    assert len(reports) == 1
    assert "<svg" in reports[0].read_text()
    assert (reports[0].parent / "report.md").is_file()
    assert (reports[0].parent / "report.json").is_file()

    better = gedrag("eval", "run", "--release", "default", "--suite", SUITE)
    assert better.returncode == 0, better.stderr
    assert "ingestion reused" in better.stdout

    promoted = gedrag("release", "promote", "default", "--suite", SUITE)
    assert promoted.returncode == 0 and "promoted rel_" in promoted.stdout, promoted.stderr
    refused = gedrag("release", "promote", "dense-top1", "--suite", SUITE)
    assert refused.returncode == 1
    assert "refused" in refused.stdout
    assert "recall@k 0.500 is below the floor 0.800" in refused.stdout

    compared = gedrag("eval", "compare", "dense-top1", "default", "--suite", SUITE)
    assert compared.returncode == 0, compared.stderr
    assert "+0.5000" in compared.stdout and "8 of 8 questions changed on ndcg@10" in compared.stdout

    listed = gedrag("release", "list")
    assert listed.returncode == 0 and "★" in listed.stdout and "dense-top1" in listed.stdout
