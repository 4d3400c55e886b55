"""Executor conformance (``tests/support/executor_conformance.py``) on both executors of the
ingestion service, over real embedded stores (SQLite catalog, the local vector folder, the
relational graph) and the hashing embedder:

* ``InProcessExecutor``: the steps in the calling thread (evaluation, benchmarks);
* ``CeleryExecutor``: the tasks queued on the ``memory://`` broker and run by a real Celery
  worker on threads in this process, as ``gedrag up`` runs it (``serving/app.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingestion.celery_app import GedragCelery, start_embedded_worker
from ingestion.service import IngestionService, InProcessExecutor
from ingestion.tasks import CeleryExecutor
from tests.support.executor_conformance import ExecutorConformance, Ingestion, runtime

pytestmark = pytest.mark.integration


class TestInProcessExecutor(ExecutorConformance):
    @pytest.fixture
    def ingestion(self, tmp_path: Path) -> Iterator[Ingestion]:
        rt = runtime(tmp_path)
        service = IngestionService(rt)
        yield Ingestion(service, InProcessExecutor(service))
        rt.close()


class TestCeleryExecutor(ExecutorConformance):
    @pytest.fixture
    def ingestion(self, tmp_path: Path) -> Iterator[Ingestion]:
        rt = runtime(tmp_path)
        app = GedragCelery(rt.settings, rt)
        worker = start_embedded_worker(app)
        yield Ingestion(app.ingestion, CeleryExecutor(app))
        worker.stop(in_sighandler=False)
        rt.close()
