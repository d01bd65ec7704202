"""The CLI as a user runs it: a subprocess with the example config, with no config, and `--check`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import CAPITAL_QUERY, CAPITALS
from tests.serving import cli_process

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.yaml"
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("COHERE_API_KEY", "CO_API_KEY", "DATABASE_URL")}


def run_check(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "proxy", "--config", str(config), "--check"],
                          capture_output=True, text=True, env=CLEAN_ENV, timeout=60)


def test_check_accepts_the_example_config():
    result = run_check(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert "local-bm25" in result.stdout
    assert "COHERE_API_KEY" in result.stderr


def test_check_names_the_yaml_path_of_each_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model_list:\n"
        "  - model_name: a\n"
        "    litellm_params: {model: cohere/rerank-v3.5, api_kee: x}\n"
        "  - model_name: b\n"
        "    litellm_params: {model: nosuch/model}\n"
        "general_settings: {master_key: os.environ/UNSET_MASTER_KEY_VAR}\n"
        "router_settings: {routing_strategy: simple-shuffle, bogus: 1}\n"
    )
    result = run_check(bad)
    assert result.returncode != 0
    assert "model_list[0].litellm_params" in result.stderr and "api_kee" in result.stderr
    assert "model_list[1].litellm_params" in result.stderr and "nosuch" in result.stderr
    assert "router_settings.bogus" in result.stderr


def test_check_reports_repeated_deployment_ids_and_bad_model_group_aliases(tmp_path):
    bad = tmp_path / "ids.yaml"
    bad.write_text(
        "model_list:\n"
        "  - {model_name: a, litellm_params: {model: local/bm25}, model_info: {id: same}}\n"
        "  - {model_name: b, litellm_params: {model: local/bm25}, model_info: {id: same}}\n"
        "router_settings: {model_group_alias: {old: gone}}\n"
    )
    result = run_check(bad)
    assert result.returncode == 2
    assert ("model_list[1].model_info.id: deployment id 'same' is already used by model_list[0].model_info.id"
            in result.stderr)
    bad.write_text(
        "model_list:\n"
        "  - {model_name: a, litellm_params: {model: local/bm25}}\n"
        "router_settings: {model_group_alias: {old: gone}}\n"
    )
    result = run_check(bad)
    assert result.returncode == 2
    assert "router_settings.model_group_alias.old: 'gone' is not a model_name in the model_list" in result.stderr


def test_check_reports_a_missing_master_key_variable(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("general_settings: {master_key: os.environ/UNSET_MASTER_KEY_VAR}\n")
    result = run_check(config)
    assert result.returncode != 0 and "general_settings.master_key" in result.stderr
    assert "UNSET_MASTER_KEY_VAR" in result.stderr


def test_example_config_serves_offline_and_never_prints_secrets(tmp_path):
    with cli_process(["--config", str(EXAMPLE)], env=CLEAN_ENV, cwd=tmp_path) as (proc, url):
        headers = {"Authorization": "Bearer sk-1234"}
        ok = httpx.post(url + "/v1/rerank", headers=headers,
                        json={"model": "local-bm25", "query": CAPITAL_QUERY, "documents": CAPITALS, "top_n": 3})
        assert ok.status_code == 200 and ok.json()["results"][0]["index"] == 2
        unavailable = httpx.post(url + "/v1/rerank", headers=headers,
                                 json={"model": "rerank-english-v3.0", "query": "q", "documents": ["d"]})
        # The Cohere deployment has no key; its fallback (local-bm25) answers instead.
        assert unavailable.status_code == 200 and unavailable.headers["x-fallback-used"] == "true"
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    assert "listening on http://127.0.0.1" in output and "local-bm25" in output
    assert "COHERE_API_KEY" in output
    assert "sk-1234" not in output
    assert (tmp_path / "rerank_proxy.db").exists()


def test_no_config_serves_the_offline_default(tmp_path):
    with cli_process([], env=CLEAN_ENV, cwd=tmp_path) as (proc, url):
        response = httpx.post(url + "/rerank", json={"model": "local-bm25", "query": CAPITAL_QUERY,
                                                     "documents": CAPITALS})
        assert response.status_code == 200 and response.json()["results"][0]["index"] == 2


def test_two_workers_serve(tmp_path):
    with cli_process(["--num_workers", "2"], env=CLEAN_ENV, cwd=tmp_path) as (proc, url):
        for _ in range(6):
            response = httpx.post(url + "/rerank", json={"query": "q", "documents": ["a q", "b"]})
            assert response.status_code == 200
