"""Fixtures of the integration tier shared across its modules."""

from tests.support.vllm_server import vllm_server  # noqa: F401  (fixture: one server a session)
