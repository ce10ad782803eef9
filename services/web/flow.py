"""The sign-in flow's per-browser state, kept where upstream keeps it: in a signed cookie
session (gin's cookie store), separate from the login session because a visitor has it before
logging in. It holds the Turnstile pass (middleware/turnstile-check.go: `turnstile`) and the
OAuth state with its invite code (controller/oauth_common.go: `oauth_state`, `aff`), and here
also the user whose second factor (TOTP) is awaited and the pending WebAuthn challenge."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import Response

from services.web.client_ip import over_https
from services.web.deps import Deps
from services.web.session import sign_data, unsign_data

COOKIE_NAME = "veloera_flow"
# A Turnstile pass lasts as long as the browser session, at most this long.
TURNSTILE_PASS_SECONDS = 24 * 3600
# The OAuth round trip (consent page included) must finish within this.
OAUTH_STATE_SECONDS = 600
# After the password (or a provider) was accepted, the second factor must come within this.
TWO_FACTOR_SECONDS = 300
# A WebAuthn ceremony (the browser's passkey prompt) must finish within this.
PASSKEY_CHALLENGE_SECONDS = 300


def read(connection: HTTPConnection, deps: Deps) -> dict[str, Any]:
    return unsign_data(deps.settings.session_secret.value, connection.cookies.get(COOKIE_NAME, ""))


def turnstile_passed(flow: dict[str, Any]) -> bool:
    until = flow.get("turnstile_until")
    return isinstance(until, int | float) and until > time.time()


def start_two_factor(data: dict[str, Any], user_id: int) -> None:
    """Remember whose second factor the next `/api/user/login/2fa` checks."""
    data.update(tfa_user=user_id, tfa_until=int(time.time()) + TWO_FACTOR_SECONDS)


def pending_two_factor(data: dict[str, Any]) -> int | None:
    """The user waiting for a second factor, while the wait has not expired."""
    user_id, until = data.get("tfa_user"), data.get("tfa_until")
    fresh = isinstance(until, int) and until > time.time()
    return user_id if isinstance(user_id, int) and user_id > 0 and fresh else None


def set_cookie(
    response: Response, connection: HTTPConnection, deps: Deps, data: dict[str, Any]
) -> None:
    """Store `data` as the flow state; a browser-session cookie (no max-age)."""
    response.set_cookie(
        COOKIE_NAME,
        sign_data(deps.settings.session_secret.value, data),
        path="/",
        httponly=True,
        samesite="lax",
        secure=deps.settings.session_cookie_secure or over_https(connection, deps),
    )
