"""Bedrock's `aws_role_name`: credentials for an assumed IAM role, from STS through botocore's own fetchers.

`AssumeRole` is signed with the deployment's base credentials (keys, profile or default chain);
`AssumeRoleWithWebIdentity` sends `aws_web_identity_token` unsigned, as AWS wants. The result is botocore's
refreshable credentials: `signing.AwsCredentialSource` reuses them until they near expiry (botocore refreshes
15 minutes ahead), then calls STS again. Every STS call has the deployment's timeout and one attempt.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_SESSION_NAME = "rerank-proxy"


@dataclass(frozen=True, slots=True)
class AssumedRole:
    """LiteLLM's Bedrock role keys: `aws_role_name` (the role ARN), `aws_session_name`,
    `aws_web_identity_token` (an OIDC token: AssumeRoleWithWebIdentity) and `aws_sts_endpoint`."""

    arn: str
    session_name: str = DEFAULT_SESSION_NAME
    web_identity_token: str | None = None
    sts_endpoint: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, Any]) -> AssumedRole:
        return cls(str(params["aws_role_name"]), str(params.get("aws_session_name") or DEFAULT_SESSION_NAME),
                   params.get("aws_web_identity_token") or None, params.get("aws_sts_endpoint") or None)


def assume_role_loader(role: AssumedRole, base: Callable[[], Any] | None, *, region: str,
                       timeout: float) -> Callable[[], Any]:
    """A blocking loader (run in a worker thread) of refreshable credentials for `role`.

    `base` loads the credentials that sign AssumeRole (None with a web identity token, which needs none).
    """

    def load() -> Any:
        from botocore.config import Config
        from botocore.credentials import (
            AssumeRoleCredentialFetcher,
            AssumeRoleWithWebIdentityCredentialFetcher,
            DeferredRefreshableCredentials,
        )
        from botocore.session import Session

        session = Session()
        limits = Config(connect_timeout=timeout, read_timeout=timeout, retries={"total_max_attempts": 1})

        def client_creator(service: str, config: Any = None, **kwargs: Any) -> Any:
            merged = limits.merge(config) if config is not None else limits
            return session.create_client(service, region_name=region, endpoint_url=role.sts_endpoint,
                                         config=merged, **kwargs)

        extra = {"RoleSessionName": role.session_name}
        fetcher: Any
        if role.web_identity_token:
            token = role.web_identity_token
            fetcher = AssumeRoleWithWebIdentityCredentialFetcher(client_creator, lambda: token, role.arn, extra)
            method = "assume-role-with-web-identity"
        else:
            source = base() if base is not None else None
            if source is None:
                return None
            fetcher = AssumeRoleCredentialFetcher(client_creator, source, role.arn, extra)
            method = "assume-role"
        return DeferredRefreshableCredentials(fetcher.fetch_credentials, method)

    return load
