"""deploy/kubernetes: rendered by kustomize and validated offline against the Kubernetes API schemas
(kubernetes-validate, strict: an unknown field fails), then read for what the operator's guide promises."""

from __future__ import annotations

import copy
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from proxy.cli import REQUEST_DRAIN_SECONDS
from proxy.spend.writer import SpendWriter

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())  # the oldest supported, the newest known
KUSTOMIZATION = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def rendered() -> dict[str, dict[str, Any]]:
    """`kubectl kustomize` output by kind (kubectl ships kustomize; skipped where it is not installed)."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the manifests are still validated file by file")
    result = subprocess.run([kubectl, "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    documents = list(yaml.safe_load_all(result.stdout))
    kinds = [doc["kind"] for doc in documents]
    assert len(kinds) == len(set(kinds))
    return {doc["kind"]: doc for doc in documents}


def resource_files() -> list[Path]:
    return [MANIFESTS / name for name in KUSTOMIZATION["resources"]] + [MANIFESTS / "secret.example.yaml"]


def test_kustomization_lists_every_manifest_in_the_directory():
    listed = set(KUSTOMIZATION["resources"])
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {"kustomization.yaml", "config.yaml", "secret.example.yaml"}
    assert listed == on_disk
    assert KUSTOMIZATION["configMapGenerator"][0]["files"] == ["config.yaml"]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_file_is_valid_kubernetes(version: str):
    for path in resource_files():
        kubernetes_validate.validate(yaml.safe_load(path.read_text()), version, strict=True)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_the_rendered_kustomization_is_valid_kubernetes(rendered: dict[str, dict[str, Any]], version: str):
    assert set(rendered) == {"ConfigMap", "Service", "Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler",
                             "Job"}
    for document in rendered.values():
        kubernetes_validate.validate(document, version, strict=True)


def test_the_validation_would_notice_a_misspelt_field(rendered: dict[str, dict[str, Any]]):
    broken = copy.deepcopy(rendered["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/", "port": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def container(document: dict[str, Any]) -> dict[str, Any]:
    (only,) = document["spec"]["template"]["spec"]["containers"]
    return only


def test_probes_grace_period_and_rollout_follow_the_server(rendered: dict[str, dict[str, Any]]):
    deployment = rendered["Deployment"]
    pod, server = deployment["spec"]["template"]["spec"], container(deployment)
    assert server["livenessProbe"]["httpGet"]["path"] == "/health/liveliness"
    assert server["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert server["startupProbe"]["httpGet"]["path"] == "/health/liveliness"
    (port,) = server["ports"]
    assert {server[p]["httpGet"]["port"] for p in ("livenessProbe", "readinessProbe", "startupProbe")} == {port["name"]}
    assert {"name": "PORT", "value": str(port["containerPort"])} in server["env"]
    pre_stop = int(server["lifecycle"]["preStop"]["exec"]["command"][1])
    spend_drain = inspect.signature(SpendWriter.stop).parameters["timeout"].default
    assert pod["terminationGracePeriodSeconds"] > pre_stop + REQUEST_DRAIN_SECONDS + spend_drain
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    assert {"/app/config.yaml", "/data", "/tmp"} <= mounts  # read-only root: the spill file goes to /data


def test_service_budget_and_autoscaler_select_the_server_pods(rendered: dict[str, dict[str, Any]]):
    deployment = rendered["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert rendered["Service"]["spec"]["selector"].items() <= labels.items()
    assert rendered["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    job_labels = rendered["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not rendered["Service"]["spec"]["selector"].items() <= job_labels.items()  # no traffic to the Job
    target = rendered["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_the_job_migrates_and_the_pods_only_check_the_schema(rendered: dict[str, dict[str, Any]]):
    job, server = container(rendered["Job"]), container(rendered["Deployment"])
    assert job["args"] == ["migrate", "--config", "/app/config.yaml"]
    assert job["image"] == server["image"] and job["envFrom"] == server["envFrom"]
    config = yaml.safe_load(rendered["ConfigMap"]["data"]["config.yaml"])
    assert config["general_settings"]["disable_schema_update"] is True
    config_volumes = [v["configMap"]["name"] for d in ("Job", "Deployment")
                      for v in rendered[d]["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    assert config_volumes == [rendered["ConfigMap"]["metadata"]["name"]] * 2


def test_the_secret_template_holds_every_variable_the_config_reads_and_no_value():
    secret = yaml.safe_load((MANIFESTS / "secret.example.yaml").read_text())
    config = (MANIFESTS / "config.yaml").read_text()
    needed = set(re.findall(r"os\.environ/(\w+)", config)) | {"DATABASE_URL", "REDIS_URL"}
    assert set(secret["stringData"]) == needed
    assert all(value == "" for value in secret["stringData"].values())
    deployment = yaml.safe_load((MANIFESTS / "deployment.yaml").read_text())
    assert container(deployment)["envFrom"] == [{"secretRef": {"name": secret["metadata"]["name"]}}]
    env = {k: v for k, v in os.environ.items() if k not in needed} | {name: "x" for name in needed}
    result = subprocess.run([sys.executable, "-m", "proxy", "--config", str(MANIFESTS / "config.yaml"), "--check"],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
