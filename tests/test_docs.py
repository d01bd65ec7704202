"""The documentation stays true: the config reference covers every key, and its code samples run."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from proxy.settings import parse_config
from tests.serving import running_proxy

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _reference_hook() -> Any:
    spec = importlib.util.spec_from_file_location("config_reference", DOCS / "hooks" / "config_reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def marked_sample(page: Path) -> str:
    """The python block right after the page's `tests/test_docs.py runs this block` marker."""
    text = page.read_text()
    marker = text.index("tests/test_docs.py runs this block")
    return blocks(text[marker:], "python")[0]


def test_the_configuration_reference_lists_every_key_with_a_description():
    hook = _reference_hook()
    page = hook.render()
    for _title, model, prefix in hook.sections():
        for name, field in model.model_fields.items():
            assert f"`{prefix}{name}`" in page, f"{prefix}{name} is missing from the configuration reference"
            assert field.description, (f"{model.__name__}.{name} has no docstring: add one under the field in "
                                       "proxy/settings.py, it is the reference's description")
    common, own = hook.deployment_params()
    for key in [*common, *own]:
        assert f"`{key}`" in page, f"litellm_params key {key} is missing from the configuration reference"


def test_the_reference_marker_is_on_the_configuration_page():
    assert _reference_hook().MARKER in (DOCS / "configuration.md").read_text()


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_full_config_in_the_docs_is_valid(page):
    """A YAML block with a `model_list` is a whole config file: it must load as written."""
    for block in blocks((DOCS / page).read_text(), "yaml"):
        raw = yaml.safe_load(block)
        if not isinstance(raw, dict) or "model_list" not in raw:
            continue
        environ = {name: "set" for name in re.findall(r"os\.environ/(\w+)", block)}
        assert parse_config(raw, environ).aliases


def test_the_sdk_pages_offline_sample_runs():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(marked_sample(DOCS / "sdk.md"), {})
    index, score, text = out.getvalue().split(" ", 2)
    assert index == "1" and float(score) > 0 and text.startswith("Washington")


@pytest.mark.parametrize("page", ["README.md", "docs/getting-started.md"])
def test_the_cohere_sdk_sample_runs_against_the_example_config(page, tmp_path):
    sample = marked_sample(ROOT / page)
    config = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    config["general_settings"]["database_url"] = f"sqlite:///{tmp_path / 'docs.db'}"
    with running_proxy(config) as server:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(sample.replace("http://127.0.0.1:4000", server.url), {})
    index, score = out.getvalue().split()
    assert index == "1" and float(score) > 0


def test_the_benchmark_picture_is_drawn_from_the_published_figures(tmp_path):
    chart = importlib.util.spec_from_file_location("chart", ROOT / "bench" / "chart.py")
    assert chart and chart.loader
    module = importlib.util.module_from_spec(chart)
    chart.loader.exec_module(module)
    counts, rps, cpu = module.series(module.json.loads(module.DEFAULT_RESULTS.read_text()))
    assert counts == [4, 100, 1000]
    assert rps["rerank-proxy"] == [6271, 3786, 712] and cpu["fastest floor"] == [0.127, 0.174, 0.759]
    out = module.draw(module.json.loads(module.DEFAULT_RESULTS.read_text()), tmp_path / "bench.png")
    assert out.read_bytes().startswith(b"\x89PNG")
