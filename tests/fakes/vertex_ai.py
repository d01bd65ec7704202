"""Fake Discovery Engine ranking API plus a fake Google OAuth token endpoint on the same server.

The token endpoint takes the JWT-bearer grant google-auth sends for a service account, verifies the
assertion's RS256 signature with the test key's public half and its claims, and issues opaque tokens; the
ranking route accepts only tokens it issued. The service account (an RSA key made per fake) points its
`token_uri` here, so nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any
from urllib.parse import parse_qs

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .base import FakeUpstream, Recorded, Reject, ranked, require_fields

PROJECT = "fake-project"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # google-auth's `aud`, whatever token_uri is
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
RANK_PATH = f"/v1/projects/{PROJECT}/locations/global/rankingConfigs/default_ranking_config:rank"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
FIELDS = {"model", "query", "records", "topN", "ignoreRecordDetailsInResponse", "userLabels"}


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FakeVertexAI(FakeUpstream):
    provider = "vertex_ai"
    token_lifetime = 3600
    token_delay = 0.0

    def __init__(self) -> None:
        super().__init__()
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.client_email = f"reranker-{secrets.token_hex(4)}@{PROJECT}.iam.gserviceaccount.com"
        self.issued: set[str] = set()
        self.token_requests: list[Recorded] = []

    # -- the service account and its token endpoint ----------------------------------------------
    def service_account(self) -> dict[str, str]:
        pem = self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": PROJECT, "private_key_id": "fake-key-1",
                "private_key": pem, "client_email": self.client_email, "client_id": "1",
                "token_uri": f"{self.url}/token"}

    def credentials_json(self) -> str:
        return json.dumps(self.service_account())

    async def _token(self, request: Request) -> Response:
        await asyncio.sleep(self.token_delay)
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        self.token_requests.append(Recorded(request.method, request.url.path, dict(request.headers), form))
        if request.headers.get("content-type", "").split(";")[0] != "application/x-www-form-urlencoded":
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if form.get("grant_type") != JWT_BEARER or not form.get("assertion"):
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        try:
            claims = self._verified_claims(form["assertion"])
        except (ValueError, InvalidSignature):
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                                status_code=400)
        if claims.get("iss") != self.client_email or claims.get("aud") != GOOGLE_TOKEN_AUDIENCE \
                or CLOUD_PLATFORM not in str(claims.get("scope", "")).split():
            return JSONResponse({"error": "invalid_grant", "error_description": "Invalid JWT claims."},
                                status_code=400)
        token = f"ya29.fake-{secrets.token_urlsafe(16)}"
        self.issued.add(token)
        return JSONResponse({"access_token": token, "expires_in": self.token_lifetime,
                             "token_type": "Bearer"})

    def _verified_claims(self, assertion: str) -> dict[str, Any]:
        header, payload, signature = assertion.split(".")
        if json.loads(_b64decode(header)).get("alg") != "RS256":
            raise ValueError("not RS256")
        signed = f"{header}.{payload}".encode()
        self._key.public_key().verify(_b64decode(signature), signed, padding.PKCS1v15(), hashes.SHA256())
        return json.loads(_b64decode(payload))

    # -- the ranking API ---------------------------------------------------------------------------
    def route_paths(self) -> list[str]:
        return ["/v1/projects/{project}/locations/{location}/rankingConfigs/{config}"]

    def app(self) -> Starlette:
        app = super().app()
        app.router.routes.append(Route("/token", self._token, methods=["POST"]))
        return app

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}}

    def check_auth(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or token not in self.issued:
            raise Reject(401, "Request had invalid authentication credentials.")
        if request.headers.get("x-goog-user-project") != PROJECT:
            raise Reject(403, "Caller does not have required permission to use project.")

    def answer(self, path: str, body: Any, request: Request) -> Response:
        if path != RANK_PATH:
            raise Reject(404, f"Resource not found: {path}")
        require_fields(body, {"query", "records"}, FIELDS)
        records = body["records"]
        if not isinstance(records, list) or not 1 <= len(records) <= 200:
            raise Reject(400, "records must hold between 1 and 200 records.")
        texts = []
        for record in records:
            if not isinstance(record, dict) or set(record) - {"id", "title", "content"} \
                    or not isinstance(record.get("id"), str) \
                    or not (record.get("content") or record.get("title")):
                raise Reject(400, "Each record needs a string id and a title or content.")
            texts.append(f"{record.get('title', '')} {record.get('content', '')}")
        top_n = body.get("topN")
        if top_n is not None and not isinstance(top_n, int):
            raise Reject(400, "Invalid value at 'top_n' (TYPE_INT32)")
        out = []
        for index, score in ranked(body["query"], texts, top_n if top_n and top_n > 0 else None):
            item: dict[str, Any] = {"id": records[index]["id"]}
            if score:  # proto3 JSON leaves out a zero score
                item["score"] = score
            if not body.get("ignoreRecordDetailsInResponse"):
                item.update({k: v for k, v in records[index].items() if k in ("title", "content")})
            out.append(item)
        return JSONResponse({"records": out} if out else {})


def params(fake: FakeVertexAI) -> dict[str, Any]:
    return {"api_base": fake.url, "vertex_credentials": fake.credentials_json()}


def expected(fake: FakeVertexAI, query: str, documents: list[str], top_n: int | None) -> tuple[str, Any]:
    body: dict[str, Any] = {"model": "semantic-ranker-default@latest", "query": query,
                            "records": [{"id": str(i), "content": d} for i, d in enumerate(documents)],
                            "ignoreRecordDetailsInResponse": True}
    if top_n is not None:
        body["topN"] = top_n
    return RANK_PATH, body


def check_headers(rec: Recorded, fake: FakeVertexAI) -> None:
    assert rec.headers["authorization"].removeprefix("Bearer ") in fake.issued
    assert rec.headers["x-goog-user-project"] == PROJECT
