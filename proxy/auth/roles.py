"""LiteLLM's internal-user roles, as this proxy applies them to the admin API.

A key inherits the `user_role` of the internal user its `user_id` names; the master key is a `proxy_admin`.

- `proxy_admin`: every admin route.
- `proxy_admin_viewer`: the admin routes that only read (info, list, spend, reports, audit, health), and no
  rerank calls (LiteLLM keeps read-only admins off cost-incurring routes).
- `internal_user`, `internal_user_viewer`, or no role: rerank calls, `/key/info` for their own key and
  `/user/info` for their own user; every other admin route answers 403 naming the role.
"""

from __future__ import annotations

PROXY_ADMIN = "proxy_admin"
PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
INTERNAL_USER = "internal_user"
INTERNAL_USER_VIEWER = "internal_user_viewer"
ROLES = (PROXY_ADMIN, PROXY_ADMIN_VIEWER, INTERNAL_USER, INTERNAL_USER_VIEWER)
ADMIN_READERS = frozenset({PROXY_ADMIN, PROXY_ADMIN_VIEWER})
VIEWER_NO_RERANK = (f"role '{PROXY_ADMIN_VIEWER}' may not call rerank routes (a read-only admin incurs no cost, "
                    "as in LiteLLM); use a key whose user has another role")


def refusal(role: str | None, *, write: bool) -> str:
    """Why a caller with `role` may not call an admin route (one that changes something when `write`)."""
    needed = "the master key or a proxy_admin key" if write else \
        "the master key or a proxy_admin or proxy_admin_viewer key"
    if role is None:
        return f"this route needs {needed}; this key has no role (its user_id names no user with a user_role)"
    if role == PROXY_ADMIN_VIEWER:
        return f"this route changes things and needs {needed}; role '{role}' may only read"
    return f"this route needs {needed}; this key's role is '{role}'"
