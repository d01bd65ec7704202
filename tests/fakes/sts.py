"""Fake AWS STS: `AssumeRole` (SigV4-signed by the base credentials, verified by recomputing the signature)
and `AssumeRoleWithWebIdentity` (unsigned, checks the token), answering STS's XML with temporary credentials.

The query protocol as botocore speaks it: a form-encoded `POST /` with `Action` and `Version=2011-06-15`.
`lifetime` sets how long issued credentials last; each grant gets fresh keys, recorded in `issued`.
"""

from __future__ import annotations

import hmac
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .server import LiveServer

BASE_ACCESS_KEY = "AKIDFAKESTSBASE00001"
BASE_SECRET_KEY = "fake/sts/base/secret/for/tests/only00000"
ROLE_ARN = "arn:aws:iam::123456789012:role/reranker"
WEB_IDENTITY_TOKEN = "eyJfake.oidc.token"

_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)"
                   r"/(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+),"
                   r" Signature=(?P<signature>[0-9a-f]{64})")
_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


class FakeSTS:
    def __init__(self, region: str) -> None:
        self.region = region
        self.lifetime = timedelta(hours=1)
        self.calls: list[dict[str, str]] = []
        """Each accepted call's form fields (Action, RoleArn, RoleSessionName, ...)."""
        self.issued: list[Credentials] = []
        self._lock = threading.Lock()
        self.server: LiveServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def start(self) -> FakeSTS:
        self.server = LiveServer(Starlette(routes=[Route("/", self._handle, methods=["POST"])])).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.issued.clear()
        self.lifetime = timedelta(hours=1)

    async def _handle(self, request: Request) -> Response:
        raw = await request.body()
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if form.get("Version") != "2011-06-15":
            return _error(400, "InvalidAction", "Version must be 2011-06-15")
        action = form.get("Action")
        if action == "AssumeRole":
            problem = self._signature_problem(request, raw)
            if problem:
                return _error(403, "SignatureDoesNotMatch", problem)
        elif action == "AssumeRoleWithWebIdentity":
            if "authorization" in request.headers:
                return _error(400, "InvalidParameterValue", "AssumeRoleWithWebIdentity must not be signed")
            if form.get("WebIdentityToken") != WEB_IDENTITY_TOKEN:
                return _error(400, "InvalidIdentityToken", "The web identity token is not valid")
        else:
            return _error(400, "InvalidAction", f"unknown action {action!r}")
        if form.get("RoleArn") != ROLE_ARN:
            return _error(403, "AccessDenied", f"not authorized to perform sts:{action} on {form.get('RoleArn')}")
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", form.get("RoleSessionName", "")):
            return _error(400, "ValidationError", "RoleSessionName is missing or invalid")
        granted = Credentials(f"ASIA{uuid.uuid4().hex[:16].upper()}", uuid.uuid4().hex * 2, f"token-{uuid.uuid4()}")
        with self._lock:
            self.calls.append(form)
            self.issued.append(granted)
        expires = (datetime.now(UTC) + self.lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        xml = (f'<{action}Response xmlns="{_NS}"><{action}Result><Credentials>'
               f"<AccessKeyId>{granted.access_key}</AccessKeyId><SecretAccessKey>{granted.secret_key}"
               f"</SecretAccessKey><SessionToken>{granted.token}</SessionToken><Expiration>{expires}</Expiration>"
               f"</Credentials><AssumedRoleUser><AssumedRoleId>AROAFAKE:{form['RoleSessionName']}</AssumedRoleId>"
               f"<Arn>arn:aws:sts::123456789012:assumed-role/reranker/{form['RoleSessionName']}</Arn>"
               f"</AssumedRoleUser></{action}Result><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
               f"</ResponseMetadata></{action}Response>")
        return Response(xml, media_type="text/xml")

    def _signature_problem(self, request: Request, raw: bytes) -> str | None:
        match = _AUTH.fullmatch(request.headers.get("authorization", ""))
        if not match:
            return "AssumeRole must be signed with SigV4"
        amz_date = request.headers.get("x-amz-date", "")
        if match["akid"] != BASE_ACCESS_KEY:
            return "The security token included in the request is invalid"
        if (match["region"], match["service"]) != (self.region, "sts") or amz_date[:8] != match["date"]:
            return f"Credential should be scoped to {self.region}/sts, not {match['region']}/{match['service']}"
        signed = match["signed"].split(";")
        if not {"host", "x-amz-date"} <= set(signed):
            return "SignedHeaders must include host and x-amz-date"
        url = f"http://{request.headers['host']}{request.url.path}"
        aws = AWSRequest(method=request.method, url=url, data=raw,
                         headers={name: request.headers.get(name, "") for name in signed})
        aws.context["timestamp"] = amz_date
        signer = SigV4Auth(Credentials(BASE_ACCESS_KEY, BASE_SECRET_KEY), "sts", self.region)
        expected = signer.signature(signer.string_to_sign(aws, signer.canonical_request(aws)), aws)
        if not hmac.compare_digest(expected, match["signature"]):
            return "The request signature we calculated does not match the signature you provided"
        return None


def _error(status: int, code: str, message: str) -> Response:
    xml = (f'<ErrorResponse xmlns="{_NS}"><Error><Type>Sender</Type><Code>{code}</Code>'
           f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>")
    return Response(xml, status_code=status, media_type="text/xml")
