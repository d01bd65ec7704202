"""A provider whose optional package is missing fails that deployment with an install hint, nothing else.

Each case runs in a fresh interpreter where the package is made unimportable (`sys.modules[name] = None`)
before `proxy` is imported, so no code of ours is patched.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import sys
sys.modules[{blocked!r}] = None
import proxy
assert proxy.rerank("local/bm25", "capital", ["capital city", "beach"]).results[0].index == 0
try:
    proxy.rerank({model!r}, "q", ["d"], api_base="http://127.0.0.1:9", **{params!r})
except proxy.MissingExtraError as exc:
    print(exc.status, exc)
else:
    print("no error")
"""


@pytest.mark.parametrize(("blocked", "model", "params", "message"), [
    ("botocore", "bedrock/amazon.rerank-v1:0",
     {"aws_region_name": "us-west-2", "aws_access_key_id": "a", "aws_secret_access_key": "b"},
     "Provider 'bedrock' needs the optional package 'botocore': pip install 'rerank-proxy[bedrock]'"),
    ("google.auth", "vertex_ai/semantic-ranker-default@latest", {"vertex_project": "p"},
     "Provider 'vertex_ai' needs the optional package 'google-auth': pip install 'rerank-proxy[vertex]'"),
])
def test_missing_extra_names_the_package_and_the_pip_extra(blocked, model, params, message):
    script = SCRIPT.format(blocked=blocked, model=model, params=params)
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"503 {message}"
