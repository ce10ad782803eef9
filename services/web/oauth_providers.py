"""The OAuth 2 exchanges with GitHub, a generic OpenID Connect provider, LinuxDO and IDC Flare
(controller/github.go, controller/oidc.go, controller/linuxdo.go, controller/idcflare.go),
through authlib: the authorization code for an access token, then the
provider's user. Every call is bounded by OAUTH_TIMEOUT; any failure becomes ProviderError
with a message a user can act on. (authlib's httpx integration runs on httpx2.)"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.httpx_client import AsyncOAuth2Client
from starlette.requests import HTTPConnection

from services.web.deps import Deps

logger = logging.getLogger(__name__)

DISCOVERY_TTL_SECONDS = 300.0


class ProviderError(Exception):
    """The provider refused the code or could not be reached; `message` is for the user,
    `status` the HTTP status to answer with (502: the provider failed; 403: it vouched for a
    user this site does not accept)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class Identity:
    """The provider's verified user: a stable id and the profile a new account starts with."""

    subject: str
    display_name: str
    email: str


@dataclass(frozen=True, slots=True)
class Endpoints:
    authorization: str
    token: str
    userinfo: str


@dataclass(frozen=True, slots=True)
class Client:
    label: str
    client_id: str
    client_secret: str
    endpoints: Endpoints
    redirect_uri: str = ""  # sent with the code when the provider requires it (OIDC)
    auth_method: str = "client_secret_post"  # how the client secret goes to the token endpoint


async def _exchange(deps: Deps, client: Client, code: str) -> dict[str, Any]:
    """The userinfo JSON for the authorization `code`."""
    oauth = AsyncOAuth2Client(
        client.client_id, client.client_secret,
        token_endpoint_auth_method=client.auth_method, timeout=deps.settings.oauth_timeout,
    )  # fmt: skip
    extra = {"redirect_uri": client.redirect_uri} if client.redirect_uri else {}
    try:
        async with oauth:
            await oauth.fetch_token(client.endpoints.token, code=code, **extra)
            reply = await oauth.get(
                client.endpoints.userinfo, headers={"Accept": "application/json"}
            )
            reply.raise_for_status()
            body = reply.json()
    except AuthlibBaseError as exc:
        logger.info("%s refused the authorization code: %s", client.label, exc.error)
        raise ProviderError(
            f"{client.label} refused the sign-in ({exc.error}); please start again"
        ) from exc
    except (httpx2.HTTPError, ValueError, KeyError) as exc:
        logger.warning("%s sign-in failed: %s", client.label, type(exc).__name__)
        raise ProviderError(
            f"cannot reach {client.label} to finish the sign-in, please retry later"
        ) from exc
    if not isinstance(body, dict):
        raise ProviderError(f"{client.label} returned an unreadable user profile")
    return body


async def github_identity(deps: Deps, options: dict[str, str], code: str) -> Identity:
    """GitHub's user for `code`; its numeric id is the subject (a login can be renamed)."""
    settings = deps.settings
    client = Client(
        "GitHub", options.get("GitHubClientId", ""), options.get("GitHubClientSecret", ""),
        Endpoints("", settings.github_token_url, settings.github_user_url),
    )  # fmt: skip
    user = await _exchange(deps, client, code)
    subject = str(user.get("id") or "")
    if not subject:
        raise ProviderError("GitHub returned no user id")
    name = str(user.get("name") or user.get("login") or "")
    return Identity(subject, name, str(user.get("email") or ""))


@dataclass(slots=True)
class DiscoveryCache:
    """OIDC discovery documents by well-known URL, reused for DISCOVERY_TTL_SECONDS."""

    documents: dict[str, tuple[float, dict[str, Any]]]

    async def get(self, deps: Deps, url: str) -> dict[str, Any]:
        cached = self.documents.get(url)
        if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        try:
            async with httpx.AsyncClient(timeout=deps.settings.oauth_timeout) as client:
                reply = await client.get(url, headers={"Accept": "application/json"})
                reply.raise_for_status()
                document = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            logger.warning("OIDC discovery failed: %s", type(exc).__name__)
            raise ProviderError(
                "cannot reach the OIDC provider to finish the sign-in, please retry later"
            ) from exc
        if not isinstance(document, dict):
            raise ProviderError("the OIDC provider's discovery document is unreadable")
        self.documents[url] = (time.monotonic(), document)
        return document


def discovery_cache(connection: HTTPConnection) -> DiscoveryCache:
    """The process-wide discovery cache, kept on the app state."""
    cache: DiscoveryCache | None = getattr(connection.app.state, "oidc_discovery", None)
    if cache is None:
        cache = DiscoveryCache({})
        connection.app.state.oidc_discovery = cache
    return cache


async def oidc_endpoints(
    deps: Deps, discovery: DiscoveryCache, options: dict[str, str]
) -> Endpoints:
    """The explicit endpoint options, each missing one taken from the discovery document."""
    explicit = Endpoints(
        options.get("oidc.authorization_endpoint", ""),
        options.get("oidc.token_endpoint", ""),
        options.get("oidc.user_info_endpoint", ""),
    )
    if explicit.authorization and explicit.token and explicit.userinfo:
        return explicit
    well_known = options.get("oidc.well_known", "")
    if not well_known:
        raise ProviderError("OIDC sign-in is not fully configured")
    document = await discovery.get(deps, well_known)
    return Endpoints(
        explicit.authorization or str(document.get("authorization_endpoint") or ""),
        explicit.token or str(document.get("token_endpoint") or ""),
        explicit.userinfo or str(document.get("userinfo_endpoint") or ""),
    )


async def oidc_identity(
    deps: Deps, discovery: DiscoveryCache, options: dict[str, str], code: str, redirect_uri: str
) -> Identity:
    """The OIDC user for `code`; the `sub` claim is the subject."""
    endpoints = await oidc_endpoints(deps, discovery, options)
    if not endpoints.token or not endpoints.userinfo:
        raise ProviderError("the OIDC provider publishes no token or userinfo endpoint")
    client = Client(
        "the OIDC provider", options.get("oidc.client_id", ""),
        options.get("oidc.client_secret", ""), endpoints, redirect_uri,
    )  # fmt: skip
    user = await _exchange(deps, client, code)
    subject = str(user.get("sub") or "")
    if not subject:
        raise ProviderError("the OIDC provider returned no subject")
    name = str(user.get("preferred_username") or user.get("name") or "")
    return Identity(subject, name, str(user.get("email") or ""))


# LinuxDO and IDC Flare run Discourse Connect: the same endpoints on their own hosts, and a
# trust level (0-4) the site may require a minimum of.
DISCOURSE_LABELS = {"linuxdo": "LinuxDO", "idcflare": "IDC Flare"}
DISCOURSE_OPTIONS = {"linuxdo": "LinuxDO", "idcflare": "IDCFlare"}


def _trust_level(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


async def discourse_identity(
    deps: Deps, provider: str, options: dict[str, str], code: str, redirect_uri: str
) -> Identity:
    """The LinuxDO / IDC Flare user for `code`, refused below the minimum trust level
    (`LinuxDOMinimumTrustLevel`, `IDCFlareMinimumTrustLevel`)."""
    label, prefix = DISCOURSE_LABELS[provider], DISCOURSE_OPTIONS[provider]
    base = (
        deps.settings.linuxdo_connect_url
        if provider == "linuxdo"
        else deps.settings.idcflare_connect_url
    )
    client = Client(
        label, options.get(f"{prefix}ClientId", ""), options.get(f"{prefix}ClientSecret", ""),
        Endpoints("", f"{base}/oauth2/token", f"{base}/api/user"), redirect_uri,
        auth_method="client_secret_basic",
    )  # fmt: skip
    user = await _exchange(deps, client, code)
    subject = str(user.get("id") or "")
    if not subject:
        raise ProviderError(f"{label} returned no user id")
    level = _trust_level(user.get("trust_level"))
    minimum = _trust_level(options.get(f"{prefix}MinimumTrustLevel"))
    if level < minimum:
        raise ProviderError(
            f"your {label} trust level is {level}; this site requires at least {minimum}", 403
        )
    name = str(user.get("name") or user.get("username") or "")
    return Identity(subject, name, str(user.get("email") or ""))
