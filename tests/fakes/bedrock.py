"""Fake Bedrock Agent Runtime: `POST /rerank`, SigV4 verified by recomputing the signature with botocore.

Shapes follow botocore's `bedrock-agent-runtime` service model: errors are `{"message"}` with the error
type in the `x-amzn-ErrorType` header; signature problems are 403s, as AWS sends them.
"""

from __future__ import annotations

import hmac
import re
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .base import FakeUpstream, Recorded, Reject, ranked, require_fields

ACCESS_KEY = "AKIDFAKEBEDROCK0001"
SECRET_KEY = "fake/secret/key/for/tests/only0000000000"
REGION = "us-west-2"

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)"
                   r"/(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+),"
                   r" Signature=(?P<signature>[0-9a-f]{64})")
_ARN = re.compile(r"arn:aws:bedrock:(?P<region>[a-z0-9-]+)::foundation-model/(?P<id>[a-z0-9.:-]+)")
_ERROR_TYPES = {400: "ValidationException", 401: "UnrecognizedClientException", 403: "AccessDeniedException",
                404: "ResourceNotFoundException", 409: "ConflictException", 424: "DependencyFailedException",
                429: "ThrottlingException", 500: "InternalServerException", 502: "BadGatewayException",
                503: "ServiceUnavailableException", 504: "GatewayTimeoutException"}


class FakeBedrock(FakeUpstream):
    provider = "bedrock"
    region = REGION
    access_key = ACCESS_KEY
    secret_key = SECRET_KEY
    session_token: str | None = None

    def route_paths(self) -> list[str]:
        return ["/rerank"]

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        headers = {"x-amzn-errortype": _ERROR_TYPES.get(status, "InternalServerException"), **(headers or {})}
        return JSONResponse({"message": message}, status_code=status, headers=headers)

    def model_of(self, path: str, body: Any) -> str:
        try:
            config = body["rerankingConfiguration"]["bedrockRerankingConfiguration"]
            arn = config["modelConfiguration"]["modelArn"]
        except (KeyError, TypeError):
            return ""
        return str(arn).rsplit("foundation-model/", 1)[-1]

    async def _handle(self, request: Request) -> Response:
        request.state.raw = await request.body()
        return await super()._handle(request)

    def check_auth(self, request: Request) -> None:
        match = _AUTH.fullmatch(request.headers.get("authorization", ""))
        if not match:
            raise Reject(403, "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders'.")
        amz_date = request.headers.get("x-amz-date", "")
        if not re.fullmatch(r"\d{8}T\d{6}Z", amz_date) or amz_date[:8] != match["date"]:
            raise Reject(403, "X-Amz-Date is missing or does not match the credential scope date.")
        if match["akid"] != self.access_key:
            raise Reject(403, "The security token included in the request is invalid.")
        if (match["region"], match["service"]) != (self.region, "bedrock"):
            raise Reject(403, f"Credential should be scoped to a valid region and service 'bedrock', "
                              f"not '{match['region']}/{match['service']}'.")
        signed = match["signed"].split(";")
        if not {"host", "x-amz-date"} <= set(signed):
            raise Reject(403, "SignedHeaders must include host and x-amz-date.")
        if request.headers.get("x-amz-security-token") != self.session_token:
            raise Reject(403, "The security token included in the request is invalid.")
        if not hmac.compare_digest(self.signature(request, signed, amz_date), match["signature"]):
            raise Reject(403, "The request signature we calculated does not match the signature you "
                              "provided.")

    def signature(self, request: Request, signed: list[str], amz_date: str) -> str:
        """The signature AWS would compute for what actually arrived (method, URL, signed headers, body)."""
        url = f"http://{request.headers['host']}{request.url.path}"
        if request.url.query:
            url += f"?{request.url.query}"
        aws = AWSRequest(method=request.method, url=url, data=request.state.raw,
                         headers={name: request.headers.get(name, "") for name in signed})
        aws.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(self.access_key, self.secret_key, self.session_token), "bedrock", self.region)
        return signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)

    def answer(self, path: str, body: Any, request: Request) -> Response:
        require_fields(body, {"queries", "rerankingConfiguration", "sources"}, {"nextToken"})
        queries, config, sources = body["queries"], body["rerankingConfiguration"], body["sources"]
        if not (isinstance(queries, list) and len(queries) == 1 and queries[0].get("type") == "TEXT"
                and isinstance(queries[0].get("textQuery", {}).get("text"), str)):
            raise Reject(400, "queries must hold exactly one TEXT query")
        if config.get("type") != "BEDROCK_RERANKING_MODEL" \
                or set(config) != {"type", "bedrockRerankingConfiguration"}:
            raise Reject(400, "rerankingConfiguration.type must be BEDROCK_RERANKING_MODEL")
        bedrock = config["bedrockRerankingConfiguration"]
        require_fields(bedrock, {"modelConfiguration"}, {"numberOfResults"})
        arn = _ARN.fullmatch(str(bedrock["modelConfiguration"].get("modelArn", "")))
        if not arn or set(bedrock["modelConfiguration"]) - {"modelArn", "additionalModelRequestFields"}:
            raise Reject(400, "1 validation error detected: Value at 'modelArn' failed to satisfy constraint")
        if arn["region"] != self.region:
            raise Reject(400, f"The model ARN's region does not match the endpoint's region {self.region}")
        if not isinstance(sources, list) or not 1 <= len(sources) <= 1000:
            raise Reject(400, "sources must hold between 1 and 1000 items")
        texts = []
        for source in sources:
            inline = source.get("inlineDocumentSource") or {}
            text = (inline.get("textDocument") or {}).get("text")
            if set(source) != {"type", "inlineDocumentSource"} or source["type"] != "INLINE" \
                    or inline.get("type") != "TEXT" or set(inline) != {"type", "textDocument"} \
                    or not isinstance(text, str) or not 1 <= len(text) <= 32_000:
                raise Reject(400, "each source must be an INLINE TEXT document of 1 to 32000 characters")
            texts.append(text)
        count = bedrock.get("numberOfResults", len(texts))
        if not isinstance(count, int) or not 1 <= count <= 1000:
            raise Reject(400, "numberOfResults must be between 1 and 1000")
        query = queries[0]["textQuery"]["text"]
        results = [{"index": i, "relevanceScore": s} for i, s in ranked(query, texts, count)]
        return JSONResponse({"results": results})


ENV = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION_NAME": REGION}


def expected(fake: FakeBedrock, query: str, documents: list[str], top_n: int | None) -> tuple[str, Any]:
    arn = f"arn:aws:bedrock:{REGION}::foundation-model/amazon.rerank-v1:0"
    return "/rerank", {
        "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
        "rerankingConfiguration": {"type": "BEDROCK_RERANKING_MODEL", "bedrockRerankingConfiguration": {
            "modelConfiguration": {"modelArn": arn}, "numberOfResults": top_n or len(documents)}},
        "sources": [{"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}}
                    for d in documents],
    }


def check_headers(rec: Recorded, fake: FakeBedrock) -> None:
    assert rec.headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")
    assert "SignedHeaders=content-type;host;x-amz-date," in rec.headers["authorization"]
    assert "x-amz-security-token" not in rec.headers
