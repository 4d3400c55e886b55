"""The README's configuration table and the settings class describe the same variables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from core.settings import Settings

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"


def env_names(model: type[BaseModel], prefix: str = "GEDRAG_") -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.add(f"{prefix}{name.upper()}")
    return names


def test_every_setting_is_documented_and_every_documented_variable_exists() -> None:
    documented = set(re.findall(r"`(GEDRAG_[A-Z0-9_]+)`", README.read_text()))
    documented -= {"GEDRAG_TEST_REQUIRE_SERVICES"}
    assert env_names(Settings) - documented == set()
    assert documented - env_names(Settings) == set()
