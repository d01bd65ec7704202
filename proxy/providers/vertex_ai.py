"""Vertex AI ranking (Discovery Engine `rankingConfigs/default_ranking_config:rank`), Google OAuth bearer.

Credentials: `vertex_credentials` (a service-account JSON file path, or the JSON itself), else Application
Default Credentials; the token is fetched and cached by `signing.GoogleBearerAuth`, never here. The project
comes from `vertex_project`, the environment, or the inline credentials' `project_id`. At most 200 records
per call; billed per search unit of 100 records per call.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from ..errors import ConfigurationError
from ..request import RerankRequest
from .base import Deployment, Provider, ProviderResult, Scored, Usage, malformed
from .signing import GoogleBearerAuth, google_credentials_info, google_token_source

_RANK_PATH = "/v1/projects/{project}/locations/global/rankingConfigs/default_ranking_config:rank"


class VertexAI(Provider):
    name = "vertex_ai"
    requires_api_key = False
    default_api_base = "https://discoveryengine.googleapis.com"
    max_documents_per_call = 200
    extra = "vertex"
    param_env: ClassVar[dict[str, tuple[str, ...]]] = {
        "vertex_project": ("VERTEXAI_PROJECT", "GOOGLE_CLOUD_PROJECT"),
        "vertex_credentials": ("VERTEXAI_CREDENTIALS",),
    }

    def project(self, deployment: Deployment) -> str:
        project = deployment.params.get("vertex_project")
        if not project:
            info = google_credentials_info(deployment.params.get("vertex_credentials")) or {}
            project = info.get("project_id") or info.get("quota_project_id")
        if not project:
            raise ConfigurationError(f"Provider '{self.name}' needs 'vertex_project' (parameter, "
                                     "VERTEXAI_PROJECT or GOOGLE_CLOUD_PROJECT) for model "
                                     f"'{deployment.model}'")
        return str(project)

    def url(self, request: RerankRequest, deployment: Deployment) -> str:
        base = deployment.require_base()
        if base.endswith(":rank"):
            return base
        return base.removesuffix("/v1") + _RANK_PATH.format(project=self.project(deployment))

    def body(self, request: RerankRequest, deployment: Deployment) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": deployment.model,
            "query": request.query,
            "records": [{"id": str(i), "content": text} for i, text in enumerate(request.texts)],
            "ignoreRecordDetailsInResponse": True,
        }
        if request.top_n is not None:
            body["topN"] = request.top_n
        return body

    def auth_headers(self, deployment: Deployment) -> dict[str, str]:
        return {"x-goog-user-project": self.project(deployment)}

    def auth(self, deployment: Deployment) -> GoogleBearerAuth:
        source = google_token_source(deployment.params.get("vertex_credentials"), provider=self.name)
        return GoogleBearerAuth(source, timeout=deployment.timeout)

    def parse(self, data: Any, request: RerankRequest) -> ProviderResult:
        if not isinstance(data, dict):
            raise malformed(self.name, "expected a JSON object")
        # Proto3 JSON leaves out defaults: an empty answer is `{}`, a score of exactly 0 has no `score`.
        records = data.get("records", [] if data == {} else None)
        if not isinstance(records, list):
            raise malformed(self.name, "no 'records' list")
        scores = [Scored(int(r["id"]), float(r.get("score", 0.0))) for r in records]
        return ProviderResult(scores, Usage(search_units=float(math.ceil(len(request.texts) / 100))))
