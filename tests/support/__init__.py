"""Helpers of the tests. The conformance mixins' asserts are rewritten by pytest, so a failure
shows the values compared, as in a test module."""

from pathlib import Path

import pytest

pytest.register_assert_rewrite(
    *(f"{__name__}.{path.stem}" for path in Path(__file__).parent.glob("*_conformance.py"))
)
