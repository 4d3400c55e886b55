"""A real vLLM server (CPU build, from ``.venv-vllm``) serving a tiny random Llama, once per test
session, for every test that talks to an OpenAI-compatible endpoint for real.

Start-up takes ~25 s on 2 idle cores (~2.2 GB RSS in three processes: API server, engine core,
worker), so the server is shared by the session: ``tests/integration/test_vllm.py`` and the
generator and entity-extractor conformance classes. ``Server.running()`` starts it again when a
test killed it (``test_vllm.py`` kills it on purpose, last in its module). Without
``.venv-vllm`` the tests skip ("run `make vllm`"), except under
``GEDRAG_TEST_REQUIRE_SERVICES=1`` where they fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from retrieval.vllm import VLLMGenerator
from tests.conftest import REQUIRE_SERVICES
from tests.support.net import free_port
from tests.support.tiny_llm import MAX_MODEL_LEN, build_tiny_llm

VLLM_PYTHON = Path(__file__).resolve().parents[2] / ".venv-vllm" / "bin" / "python"
MODEL = "tiny"
STARTUP_S = 180
# KV cache: 256 MiB holds 131k tokens of this model (4 sequences of MAX_MODEL_LEN). vLLM's CPU
# default takes most of the machine's free memory; explicit, it also skips a warm-up pass.
KV_CACHE_BYTES = 256 * 1024 * 1024


@dataclass
class Server:
    """The session's vLLM server: where it listens, its process group and its log."""

    folder: Path
    model_dir: Path
    process: subprocess.Popen[bytes] | None = None
    base_url: str = ""
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.folder / "server.log"

    def generator(self, **kwargs: object) -> VLLMGenerator:
        kwargs.setdefault("backoff_s", 0.1)
        return VLLMGenerator(self.base_url, MODEL, **kwargs)  # type: ignore[arg-type]

    def running(self) -> Server:
        """This server, started again if a test killed it."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        return self

    def start(self) -> None:
        port = free_port()
        env = {
            **os.environ,
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        command = [
            str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", MODEL,
            "--host", "127.0.0.1",
            "--port", str(port),
            "--max-model-len", str(MAX_MODEL_LEN),
            "--dtype", "float32",
            # torch.compile warm-up doubles startup (~60 s vs ~25 s) for no gain on a tiny model
            "--enforce-eager",
            "--kv-cache-memory-bytes", str(KV_CACHE_BYTES),
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.base_url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + STARTUP_S
        while True:
            if self.process.poll() is not None:
                pytest.fail(f"vLLM exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"vLLM not healthy after {STARTUP_S} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL the whole server: API process, engine core and worker (one process group)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The session's server, started on first use; tests take ``vllm_server.running()``."""
    if not VLLM_PYTHON.exists():
        message = f"{VLLM_PYTHON.parent.parent.name} is missing (run `make vllm`)"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("vllm")
    server = Server(folder, build_tiny_llm(folder / "model"))
    try:
        server.start()
        yield server
    finally:
        server.stop()
