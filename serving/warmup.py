"""Text models loaded when the API starts, in the background, so that the first question does
not pay for them.

Before, the first ``/v1/ask`` after a start loaded the embedding model's weights, built the
question-answering stack and ran its first search: 12.9 s on 2 shared cores (load 9), 38-41 s at
load 13-25 (``bench/first_question.py``); the next ones took 0.2-0.3 s. Now that work starts with
the process (the CLI starts loading the weights before the stores open; this thread then builds
the stack and runs one search); ``/ready`` reports it as the ``models`` component ("loading",
503, until done), and the first question once ready took 0.31 s (load 16) and 0.49 s (load
25-32). An ingestion job that needs the model meanwhile shows the stage "loading model"; a
question asked meanwhile waits for the load in progress instead of loading a second copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

from core.errors import GedragError
from runtime import Runtime
from serving.readiness import Component

log = logging.getLogger(__name__)

State = Literal["loading", "ready", "failed"]


class Warmup:
    """Loads ``rt``'s text models, then runs ``then`` (the question-answering stack's first
    search), once, in a daemon thread."""

    def __init__(self, rt: Runtime, then: Callable[[], object] | None = None) -> None:
        self.rt = rt
        self.then = then
        self.state: State = "loading"
        self.error: str | None = None
        self.started = time.monotonic()
        self.seconds: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gedrag-warmup", daemon=True)

    def start(self) -> Warmup:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the warm-up ended (loaded or failed)."""
        return self._done.wait(timeout_s)

    def _run(self) -> None:
        try:
            self.rt.models.load()
            if self.then is not None:
                self.then()
        except Exception as exc:  # reported by /ready; the first question retries the load
            self.error = exc.detail if isinstance(exc, GedragError) else repr(exc)
            self.state = "failed"
            log.warning("loading the models failed", extra={"error": self.error})
        else:
            self.state = "ready"
        finally:
            self.seconds = round(time.monotonic() - self.started, 1)
            self._done.set()
        log.info("models loaded", extra={"seconds": self.seconds, "state": self.state})

    def component(self) -> Component:
        """The ``models`` entry of ``/ready``."""
        backend = self.rt.settings.embedding.model
        if self.state == "ready":
            return Component("up", backend, detail=f"loaded in {self.seconds} s")
        if self.state == "failed":
            return Component("down", backend, detail=self.error)
        waited = time.monotonic() - self.started
        return Component(
            "loading", backend, detail=f"loading the embedding model ({waited:.0f} s so far)"
        )
