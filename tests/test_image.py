"""The Docker image, built from the repository's Dockerfile by a real Docker engine and run as a user runs it.

Needs an engine: `DOCKER_HOST`, else the one `.ci/docker-engine start` runs (CI does), else the default
socket. Without one these tests skip and say why. The containers use the host's network (the CI engine
adds no iptables rules), so the proxy listens on an ephemeral port of this machine and reaches the local
PostgreSQL at 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import create_engine, text

from proxy.spend.db import database_url
from tests.conftest import POSTGRES_ENV, database_outage, scratch_database
from tests.fakes.server import free_port
from tests.serving import wait_until

ROOT = Path(__file__).resolve().parent.parent
ENGINE_SOCKET = Path("/run/rerank-proxy-docker/docker.sock")  # where .ci/docker-engine starts one
BASE = next(line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("FROM "))
MASTER_KEY = "sk-image-test"
QUERY = {"model": "local-bm25", "query": "capital of France",
         "documents": ["Paris is the capital of France.", "Cats sleep a lot.", "Berlin is in Germany."]}

pytestmark = pytest.mark.docker


def docker_cli() -> list[str]:
    """The client, talking to the engine these tests use (Debian's client first: it matches Debian's engine)."""
    binary = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")
    if binary is None:
        pytest.skip("no docker client (CI installs Debian's docker.io through .ci/docker-engine)")
    host = os.environ.get("DOCKER_HOST") or (f"unix://{ENGINE_SOCKET}" if ENGINE_SOCKET.exists() else None)
    return [binary, *(["-H", host] if host else [])]


def run(cli: list[str], *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*cli, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def docker() -> list[str]:
    cli = docker_cli()
    info = run(cli, "info", "--format", "{{.ServerVersion}}", timeout=30, check=False)
    if info.returncode != 0:
        pytest.skip(f"no Docker engine answers ({info.stderr.strip()[:200]}); as root, `.ci/docker-engine start` "
                    "runs one (CI does)")
    if run(cli, "image", "inspect", BASE, check=False).returncode != 0:
        pulled = run(cli, "pull", BASE, timeout=600, check=False)
        if pulled.returncode != 0:
            pytest.skip(f"base image {BASE} is neither present nor pullable; `.ci/docker-engine start` builds a "
                        "stand-in from Debian's packages")
    return cli


@pytest.fixture(scope="module")
def image(docker: list[str]) -> str:
    """The image as `docker build .` makes it (host network: pip reaches PyPI without the engine's NAT).

    Kept under one tag, so the next run's build reuses its layers; the versions it replaces are pruned."""
    tag = "rerank-proxy:test"
    run(docker, "build", "--network", "host", "--force-rm", "-t", tag, str(ROOT), timeout=900)
    run(docker, "image", "prune", "--force", check=False)
    return tag


@pytest.fixture
def volume(docker: list[str]) -> Iterator[str]:
    name = f"rerank-proxy-test-{uuid.uuid4().hex[:8]}"
    run(docker, "volume", "create", name)
    yield name
    run(docker, "volume", "rm", "-f", name, check=False)


class Container:
    """One `docker run -d` of the image on the host network, listening on an ephemeral port."""

    def __init__(self, docker: list[str], image: str, config: Path, *, volume: str | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.docker, self.port = docker, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["run", "-d", "--network", "host", "--health-interval", "1s", "--health-start-period", "1s",
                "-e", f"PORT={self.port}", "-e", f"RERANK_PROXY_MASTER_KEY={MASTER_KEY}", "-e", "COHERE_API_KEY=",
                "-v", f"{config}:/app/config.yaml:ro"]
        for name, value in (env or {}).items():
            args += ["-e", f"{name}={value}"]
        if volume:
            args += ["-v", f"{volume}:/data"]
        self.id = run(docker, *args, image).stdout.strip()

    def state(self) -> dict:
        return json.loads(run(self.docker, "inspect", "--format", "{{json .State}}", self.id).stdout)

    def logs(self) -> str:
        result = run(self.docker, "logs", self.id, check=False)
        return result.stdout + result.stderr

    def wait_live(self) -> None:
        def live() -> bool:
            assert self.state()["Running"], self.logs()
            try:
                return httpx.get(self.url + "/health/liveliness", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(live, timeout=90, interval=0.2)

    def rerank(self, count: int) -> list[str]:
        ids = []
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30) as client:
            for _ in range(count):
                response = client.post("/v2/rerank", json=QUERY)
                assert response.status_code == 200, response.text
                assert response.json()["results"][0]["index"] == 0
                ids.append(response.headers["x-request-id"])
        return ids

    def stop(self) -> int:
        """`docker stop` (SIGTERM, then SIGKILL after 60 s): the exit code."""
        run(self.docker, "stop", "-t", "60", self.id, timeout=120)
        return self.state()["ExitCode"]

    def remove(self) -> None:
        run(self.docker, "rm", "-f", self.id, check=False)


def write_config(directory: Path, **general: object) -> Path:
    config = directory / "config.yaml"
    config.write_text(yaml.safe_dump({
        "model_list": [{"model_name": "local-bm25", "litellm_params": {"model": "local/bm25"}}],
        "general_settings": {"master_key": "os.environ/RERANK_PROXY_MASTER_KEY", **general},
    }))
    return config


def test_the_image_runs_as_a_user_of_its_own_with_the_pinned_dependencies(docker: list[str], image: str) -> None:
    identity = run(docker, "run", "--rm", "--entrypoint", "id", image).stdout
    assert identity.startswith("uid=10001(rerank) gid=10001(rerank)"), identity
    listed = run(docker, "run", "--rm", "--entrypoint", "pip", image, "list", "--format", "json").stdout
    installed = {p["name"].lower().replace("_", "-"): p["version"] for p in json.loads(listed)}
    pins = dict(line.lower().replace("_", "-").split("==")
                for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#"))
    assert installed.pop("rerank-proxy") == "0.1.0"
    for bootstrap in ("pip", "setuptools"):  # the virtualenv's own, from the base image
        installed.pop(bootstrap, None)
    unpinned = {name: version for name, version in installed.items() if pins.get(name) != version}
    assert installed and not unpinned, f"not at constraints.txt's versions: {unpinned} (regenerate it: see its header)"


def test_the_image_serves_keeps_sqlite_spend_on_its_volume_and_stops_cleanly(
        docker: list[str], image: str, volume: str) -> None:
    config = ROOT / "docker" / "config.yaml"  # the compose file's: a `migrate` run first, then the server
    migrated = run(docker, "run", "--rm", "-e", f"RERANK_PROXY_MASTER_KEY={MASTER_KEY}", "-v", f"{volume}:/data",
                   "-v", f"{config}:/app/config.yaml:ro", image, "migrate", "--config", "/app/config.yaml")
    assert "sqlite:///./rerank_proxy.db is at schema revision" in migrated.stdout
    container = Container(docker, image, config, volume=volume)
    try:
        container.wait_live()
        wait_until(lambda: container.state()["Health"]["Status"] == "healthy", timeout=60, interval=0.5)
        ids = container.rerank(20)
        assert container.stop() == 0, container.logs()
    finally:
        container.remove()
    # A new container on the same volume finds the database and every spend row: nothing lived in the old one.
    script = ("import json, sqlite3; c = sqlite3.connect('/data/rerank_proxy.db'); "
              "print(json.dumps([r for (r,) in c.execute('SELECT request_id FROM spend_logs')]))")
    stored = run(docker, "run", "--rm", "-v", f"{volume}:/data", "--entrypoint", "python3", image, "-c",
                 script).stdout
    assert set(json.loads(stored)) == set(ids)


@pytest.mark.postgres
def test_a_migration_job_then_a_replica_that_only_checks_the_schema_spend_to_postgres(
        docker: list[str], image: str, tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs {POSTGRES_ENV}")
    with scratch_database("postgres", tmp_path) as url:
        config = write_config(tmp_path, disable_schema_update=True)
        env = {"DATABASE_URL": url}
        refused = Container(docker, image, config, env=env)  # no migration yet: the replica refuses to serve
        try:
            wait_until(lambda: not refused.state()["Running"], timeout=60, interval=0.2)
            assert refused.state()["ExitCode"] == 2 and "rerank-proxy migrate" in refused.logs()
        finally:
            refused.remove()
        migrated = run(docker, "run", "--rm", "--network", "host", "-e", f"DATABASE_URL={url}",
                       "-e", f"RERANK_PROXY_MASTER_KEY={MASTER_KEY}", "-v",
                       f"{config}:/app/config.yaml:ro", image, "migrate", "--config", "/app/config.yaml")
        assert "schema revision" in migrated.stdout
        container = Container(docker, image, config, env=env)
        try:
            container.wait_live()
            ids = container.rerank(20)
            assert container.stop() == 0, container.logs()
        finally:
            container.remove()
        assert spend_ids(url) == set(ids)


def spend_ids(url: str) -> set[str]:
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as connection:
            return {r for (r,) in connection.execute(text("SELECT request_id FROM spend_logs"))}
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_spend_the_database_cannot_take_at_stop_waits_on_the_volume_for_the_next_container(
        docker: list[str], image: str, volume: str, tmp_path: Path) -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs {POSTGRES_ENV}")
    with scratch_database("postgres", tmp_path) as url:
        config, env = write_config(tmp_path), {"DATABASE_URL": url}
        first = Container(docker, image, config, volume=volume, env=env)
        try:
            first.wait_live()
            with database_outage(url, "postgres"):
                ids = first.rerank(20)  # served; their rows cannot be written
                assert first.stop() == 0, first.logs()
        finally:
            first.remove()
        assert not spend_ids(url) & set(ids)
        listed = run(docker, "run", "--rm", "-v", f"{volume}:/data", "--entrypoint", "ls", image, "/data").stdout
        assert "rerank_proxy.spend-spill" in listed.split()  # the working directory is the volume
        second = Container(docker, image, config, volume=volume, env=env)
        try:
            second.wait_live()
            wait_until(lambda: set(ids) <= spend_ids(url), timeout=60, interval=0.5)
            assert second.stop() == 0, second.logs()
        finally:
            second.remove()


def test_the_health_check_follows_the_port(docker: list[str], image: str, tmp_path: Path) -> None:
    container = Container(docker, image, write_config(tmp_path))
    try:
        container.wait_live()
        wait_until(lambda: container.state()["Health"]["Status"] == "healthy", timeout=60, interval=0.5)
        assert container.state()["Health"]["Log"][-1]["ExitCode"] == 0
    finally:
        container.remove()
