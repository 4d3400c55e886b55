"""The production stack's files: the compose file validates with the real Compose client, every
service has a healthcheck and a restart policy, every variable it reads is documented in
.env.example, and every GEDRAG_* variable it sets is a real setting that validates."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from core.errors import ConfigurationError
from core.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
PROFILES = ["gpu", "gpu-embeddings"]


def compose_command() -> list[str]:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    if legacy := shutil.which("docker-compose"):
        return [legacy]
    message = "no Compose client (`docker compose` or docker-compose; `make services` installs it)"
    if os.environ.get("GEDRAG_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def config(env_file: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profiles = [arg for p in PROFILES for arg in ("--profile", p)]
    files = ["--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file)]
    return subprocess.run(
        [*compose_command(), *files, *profiles, "config", *extra],
        capture_output=True,
        text=True,
        timeout=60,
        # Only the env file speaks: the developer's own GEDRAG_*/POSTGRES_* must not leak in.
        env={k: v for k, v in os.environ.items() if k in ("PATH", "HOME")},
    )


def env_file(tmp_path: Path, **changes: str) -> Path:
    lines = []
    for line in ENV_EXAMPLE.read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={changes[name]}" if name in changes else line)
    path = tmp_path / ".env"
    path.write_text("\n".join(lines) + "\n")
    return path


REAL_SECRETS = {
    "POSTGRES_PASSWORD": "pg-s3cret",
    "NEO4J_PASSWORD": "neo-s3cret",
    "QDRANT_API_KEY": "qd-s3cret",
    "VLLM_API_KEY": "vl-s3cret",
    "SOURCES_SECRET_KEY": "src-s3cret",
}


@pytest.fixture
def resolved(tmp_path: Path) -> dict[str, Any]:
    done = config(env_file(tmp_path, **REAL_SECRETS))
    assert done.returncode == 0, done.stderr
    parsed: dict[str, Any] = yaml.safe_load(done.stdout)
    return parsed


def test_compose_file_validates(tmp_path: Path) -> None:
    done = config(ENV_EXAMPLE, "-q")
    assert done.returncode == 0, done.stderr


def test_every_service_has_healthcheck_restart_policy_and_named_volumes(
    resolved: dict[str, Any],
) -> None:
    services = resolved["services"]
    assert set(services) >= {"api", "worker", "redis", "postgres", "qdrant", "neo4j", "vllm"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
    for name in ("postgres", "redis", "qdrant", "neo4j"):
        targets = [
            v["target"] if isinstance(v, dict) else v.split(":")[1]
            for v in services[name]["volumes"]
        ]
        assert targets, f"{name} keeps its data in no volume"
    gpu = services["vllm"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "--tensor-parallel-size=1" in services["vllm"]["command"]


def test_missing_secrets_are_refused_by_compose(tmp_path: Path) -> None:
    done = config(env_file(tmp_path, POSTGRES_PASSWORD=""), "-q")
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr


def test_every_variable_of_the_compose_file_is_in_env_example() -> None:
    read = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    documented = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if re.match(r"[A-Z_][A-Z0-9_]*=", line)
    }
    assert read <= documented, f"not in .env.example: {sorted(read - documented)}"
    assert len(read) >= 15  # a pattern that found nothing would pass the line above vacuously


def is_setting(name: str) -> bool:
    """GEDRAG_NEO4J__PASSWORD → Settings.neo4j.password, field by field."""
    model: type[BaseModel] = Settings
    parts = name.removeprefix("GEDRAG_").lower().split("__")
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        annotation = field.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if nested != (i < len(parts) - 1):  # groups lead, values end
            return False
        if nested:
            model = annotation  # type: ignore[assignment]
    return True


def test_is_setting_tells_real_settings_apart() -> None:
    assert is_setting("GEDRAG_NEO4J__PASSWORD")
    assert is_setting("GEDRAG_ENV")
    assert not is_setting("GEDRAG_NEO4J__PASWORD")
    assert not is_setting("GEDRAG_ENV__X")
    assert not is_setting("GEDRAG_QDRANT")


def gedrag_environments(resolved: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        name: {
            k: str(v) for k, v in (s.get("environment") or {}).items() if k.startswith("GEDRAG_")
        }
        for name, s in resolved["services"].items()
        if s.get("image", "").startswith("gedrag")
    }


def test_every_gedrag_variable_set_is_a_real_setting_and_validates(
    resolved: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    environments = gedrag_environments(resolved)
    assert set(environments) == {"api", "worker", "worker-gpu"}
    for service, env in environments.items():
        unknown = [k for k in env if not is_setting(k)]
        assert not unknown, f"{service} sets variables that are no setting: {unknown}"
        for key in [k for k in os.environ if k.startswith("GEDRAG_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = Settings()
        assert settings.env == "prod"
        assert settings.qdrant.url == "http://qdrant:6333"
        assert settings.graph.backend == "neo4j"
        assert settings.catalog_url.startswith("postgresql+psycopg://gedrag:pg-s3cret@postgres")
        assert settings.observability.log_format == "json"
    assert environments["worker-gpu"]["GEDRAG_EMBEDDING__DEVICE"] == "cuda"


def test_production_refuses_the_placeholders_of_env_example(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    done = config(ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    env = gedrag_environments(yaml.safe_load(done.stdout))["api"]
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match="placeholder") as refused:
        Settings()
    for name in ("GEDRAG_CATALOG__URL", "GEDRAG_NEO4J__PASSWORD", "GEDRAG_QDRANT__API_KEY"):
        assert name in refused.value.detail
