"""How OpenMP threads wait is set before torch loads, and an operator's value wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = "import textmodels.embedding, os, sys; print(os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules)"


def _probe(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_passive_waiting_is_the_default_and_torch_is_not_loaded_yet() -> None:
    assert _probe() == "PASSIVE False"


def test_an_explicit_value_wins() -> None:
    assert _probe(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE False"
