"""What the bench measures: the documents, and the servers of each target (upstream, floors, rerank-proxy, LiteLLM)."""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from processes import HERE, PY, Server, free_port, git_revision, http

MASTER_KEY = "sk-bench-master"


UPSTREAM_KEY = "bench-upstream-key"


BLOCKED_TERM = "bench-blocked-term"


FLOOR_CLIENTS = ("httpx", "httpx-aiohttp", "aiohttp", "pyreqwest", "aiosonic", "pool")


VARIANT = "rerank-proxy-b"


PROXY_TARGETS = ("rerank-proxy", VARIANT)


ALL_TARGETS = ("direct", *(f"floor-{c}" for c in FLOOR_CLIENTS), "rerank-proxy", "litellm")


DEFAULT_TARGETS = ("direct", *(f"floor-{c}" for c in FLOOR_CLIENTS), "rerank-proxy")


QUERY = "What is the capital of the United States?"


# Config fragments the bench tries to switch on in rerank-proxy; each is kept when `--check` accepts it
# and reported as on only when its probe shows it working (features land in other branches over time).
FEATURE_CANDIDATES: dict[str, dict[str, Any]] = {
    "metrics": {"litellm_settings": {"callbacks": ["prometheus"]}},
    "guardrail": {"guardrails": [{
        "guardrail_name": "bench-banned-words",
        "litellm_params": {"guardrail": "banned_keywords", "mode": "pre_call", "default_on": True,
                           "keywords": [BLOCKED_TERM]},
    }]},
}


_WORDS = ("the capital city state river north south federal district island ocean population history law court "
          "government president museum library university market harbor mountain valley bridge railway station "
          "airport festival language culture economy industry energy climate forest desert coast border treaty "
          "parliament election century empire colony republic province county village").split()


def documents(n: int, words: int = 50, seed: int = 7) -> list[str]:
    rng = random.Random(seed + n)
    return [" ".join(rng.choice(_WORDS) for _ in range(words)) + f" (document {i})." for i in range(n)]


def body_for(n: int) -> bytes:
    return json.dumps({"model": f"bench-{n}", "query": QUERY, "documents": documents(n)}).encode()


def proxy_config(upstream: str, docs: list[int], database_url: str, features: dict[str, Any],
                 extra: dict[str, Any] | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model_list": [
            {"model_name": f"bench-{n}",
             "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": UPSTREAM_KEY,
                                "api_base": f"{upstream}/d{n}"},
             "model_info": {"id": f"bench-{n}"}}
            for n in docs
        ],
        "general_settings": {"master_key": MASTER_KEY, "database_url": database_url},
    }
    for fragment in [*features.values(), extra or {}]:
        merge(config, fragment)
    return config


def merge(into: dict[str, Any], fragment: dict[str, Any]) -> None:
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        elif isinstance(value, list) and isinstance(into.get(key), list):
            into[key] = into[key] + value
        else:
            into[key] = value


def proxy_command() -> list[str]:
    script = Path(PY).parent / "rerank-proxy"
    return [str(script)] if script.exists() else [PY, "-m", "proxy"]


def accepted_features(work: Path, upstream: str, docs: list[int], extra: dict[str, Any] | None
                      ) -> tuple[dict[str, Any], dict[str, str]]:
    """The feature fragments `rerank-proxy --check` accepts, and why the others were left out."""
    kept: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for name, fragment in FEATURE_CANDIDATES.items():
        path = work / f"check-{name}.yaml"
        config = proxy_config(upstream, docs, f"sqlite:///{work / 'check.db'}", {name: fragment}, extra)
        path.write_text(yaml.safe_dump(config))
        out = subprocess.run([*proxy_command(), "--config", str(path), "--check"], capture_output=True, text=True,
                             check=False)
        if out.returncode == 0:
            kept[name] = fragment
        else:
            notes[name] = "config refused: " + (out.stderr or out.stdout).strip().splitlines()[-1][:200]
    return kept, notes


def build_servers(args: argparse.Namespace, work: Path, upstream_url: str) -> list[Server]:
    servers = []
    for target in args.targets:
        if target.startswith("floor-"):
            client = target.removeprefix("floor-")
            if client == "httpx-aiohttp" and not _importable("httpx_aiohttp"):
                print(f"skipping {target}: pip install httpx-aiohttp (or '.[bench]')", file=sys.stderr)
                continue
            port = free_port()
            servers.append(Server(
                target, "floor", [PY, str(HERE / "floors.py"), "--client", client, "--port", str(port),
                                  "--upstream", upstream_url],
                f"http://127.0.0.1:{port}/", lambda n, p=port: f"http://127.0.0.1:{p}/d{n}/v2/rerank"))
        elif target in PROXY_TARGETS:
            servers.append(proxy_server(target, args, work, upstream_url))
        elif target == "litellm":
            litellm = shutil.which(args.litellm_cmd)
            if not litellm:
                print(f"skipping litellm: '{args.litellm_cmd}' not on PATH (pip install 'litellm[proxy]')",
                      file=sys.stderr)
                continue
            port = free_port()
            config = {"model_list": [
                {"model_name": f"bench-{n}", "litellm_params": {"model": "cohere/rerank-v3.5", "api_key": UPSTREAM_KEY,
                                                               "api_base": f"{upstream_url}/d{n}"}}
                for n in args.docs], "general_settings": {"master_key": MASTER_KEY}}
            (work / "litellm.yaml").write_text(yaml.safe_dump(config))
            servers.append(Server(
                target, "litellm", [litellm, "--config", str(work / "litellm.yaml"), "--host", "127.0.0.1",
                                    "--port", str(port), "--num_workers", str(args.workers)],
                f"http://127.0.0.1:{port}/health/liveliness", lambda n, p=port: f"http://127.0.0.1:{p}/v2/rerank",
                token=MASTER_KEY, cwd=str(work)))
    return servers


def proxy_server(name: str, args: argparse.Namespace, work: Path, upstream_url: str) -> Server:
    """rerank-proxy with the bench config; `rerank-proxy-b` adds `--variant-config` and has its own SQLite file
    (unless the variant names a database), so the spend check of the first stays exact."""
    extra = copy.deepcopy(args.extra_config or {})
    database_url = args.database_url
    if name == VARIANT:
        merge(extra, copy.deepcopy(args.variant_config))
        database_url = f"sqlite:///{work / 'spend-b.db'}"
    port = free_port()
    features, notes = accepted_features(work, upstream_url, args.docs, extra)
    config = proxy_config(upstream_url, args.docs, database_url, features, extra)
    general = config["general_settings"]
    if name == VARIANT and "database_url" not in args.variant_config.get("general_settings", {}):
        general["database_url"] = database_url  # not the one --extra-config may name: the first proxy's
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    server = Server(
        name, "proxy", [*proxy_command(), "--config", str(path), "--host", "127.0.0.1", "--port", str(port),
                        "--num_workers", str(args.workers)],
        f"http://127.0.0.1:{port}/health/liveliness", lambda n, p=port: f"http://127.0.0.1:{p}/v2/rerank",
        cwd=str(work), database_url=None if general.get("disable_spend_logs") else general["database_url"])
    server.features = {"requested": sorted(features), "notes": notes}
    if name == VARIANT and args.variant_code is not None:
        code = args.variant_code.resolve()
        server.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), os.environ.get("PYTHONPATH")]))
        server.features["code"] = {"path": str(code), "git": git_revision(code)}
    return server


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def proxy_base(server: Server) -> str:
    return server.health.rsplit("/health", 1)[0]


def database_kind(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgres") else "SQLite" if url.startswith("sqlite") else url.split(":")[0]


def prepare_proxy(server: Server, docs: list[int], body_files: dict[int, Path], database_url: str | None) -> None:
    """A virtual key for the bench, then probes: which of the requested features actually work."""
    base = proxy_base(server)
    status, created = http("POST", f"{base}/key/generate", {"key_alias": f"bench-{os.getpid()}-{time.time():.0f}",
                                                           "models": [f"bench-{n}" for n in docs]}, MASTER_KEY)
    if status != 200:
        raise SystemExit(f"/key/generate answered {status}: {created}")
    server.token = created["key"]
    status, _ = http("POST", server.url_for(docs[0]), body_files[docs[0]].read_bytes(), server.token)
    if status != 200:
        raise SystemExit(f"rerank-proxy answered {status} to the bench request")
    probe = json.loads(body_files[docs[0]].read_bytes())
    probe["query"] = f"tell me about {BLOCKED_TERM}"
    blocked, _ = http("POST", server.url_for(docs[0]), probe, server.token)
    metrics, _ = http("GET", f"{base}/metrics", token=MASTER_KEY)
    server.features.update({
        "auth": "virtual key from /key/generate",
        "spend": database_kind(database_url) if database_url else "off",
        "guardrail": blocked == 400,
        "metrics": metrics == 200,
        "workers": None,
    })
