"""Passkeys (WebAuthn) in the console, through py_webauthn (beyond upstream Veloera; new-api
has them): register one from personal settings (options, then the browser's attestation),
list and delete them, and sign in with one from the login page as a discoverable credential
(no username typed). Each ceremony's challenge waits in the signed flow cookie for
PASSKEY_CHALLENGE_SECONDS and is used once (one_time: across replicas, whatever the cookie).
Accounts keeps the credentials and the counter.

The relying party: WEBAUTHN_ORIGIN (else the origin the request came to) and WEBAUTHN_RP_ID
(else that origin's host name). Deployments set WEBAUTHN_ORIGIN: a passkey is then bound to the
console's real origin, and a phishing proxy under another name cannot register one."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import grpc
import orjson
from starlette.responses import Response
from starlette.routing import Route
from veloera.accounts.v1 import accounts_pb2
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import bytes_to_base64url
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from services.web import flow
from services.web.api import ROLE_COMMON, ApiError, Call, endpoint, ok
from services.web.client_ip import client_ip, over_https
from services.web.one_time import first_use
from services.web.options_cache import options_cache
from services.web.routes.users import signed_in

TIMEOUT_MS = flow.PASSKEY_CHALLENGE_SECONDS * 1000
MAX_NAME = 64
EXPIRED = "the passkey request has expired, please try again"
REFUSED = "the passkey was not accepted"
# A used challenge stays refused at least this long: longer than it is ever accepted.
CHALLENGE_WINDOW = flow.PASSKEY_CHALLENGE_SECONDS + 60


@dataclass(frozen=True, slots=True)
class RelyingParty:
    rp_id: str
    origin: str
    name: str


async def relying_party(call: Call) -> RelyingParty:
    """WEBAUTHN_ORIGIN, else the origin the request came to. Not the ServerAddress option:
    here that is the relay's address, which both shipped deployments put on another origin
    than the console (ports 3000 / 3001, api.* / console.*)."""
    settings = call.deps.settings
    options = await options_cache(call.request).get(call.deps)
    origin = settings.webauthn_origin
    if not origin:
        url = call.request.base_url
        if over_https(call.request, call.deps):
            url = url.replace(scheme="https")
        origin = str(url).rstrip("/")
    parts = urlsplit(origin)
    origin = f"{parts.scheme}://{parts.netloc}"
    rp_id = settings.webauthn_rp_id or (parts.hostname or "")
    if not rp_id:
        raise ApiError("passkeys are not configured: set WEBAUTHN_ORIGIN")
    return RelyingParty(rp_id, origin, options.get("SystemName", "") or "Veloera")


def _remember(call: Call, kind: str, challenge: bytes, user_id: int = 0) -> dict[str, Any]:
    data = flow.read(call.request, call.deps)
    data.update(
        pk_kind=kind, pk_user=user_id, pk_challenge=bytes_to_base64url(challenge),
        pk_until=int(time.time()) + flow.PASSKEY_CHALLENGE_SECONDS,
    )  # fmt: skip
    return data


async def _take_challenge(call: Call, kind: str, user_id: int = 0) -> tuple[dict[str, Any], bytes]:
    """The flow state without the challenge and the challenge itself, which works once: a
    second answer to it (a replayed assertion, even with the cookie copied) is refused."""
    data = flow.read(call.request, call.deps)
    stored_kind, stored_user = data.pop("pk_kind", ""), data.pop("pk_user", 0)
    challenge, until = data.pop("pk_challenge", ""), data.pop("pk_until", 0)
    fresh = isinstance(until, int) and until > time.time()
    if not (fresh and stored_kind == kind and stored_user == user_id and challenge):
        raise ApiError(EXPIRED)
    challenge = str(challenge)
    if not await first_use(call.deps, "passkey_challenge", challenge, CHALLENGE_WINDOW):
        raise ApiError(EXPIRED)
    return data, base64.urlsafe_b64decode(challenge + "==")


def _answer(call: Call, data: Any, state: dict[str, Any]) -> Response:
    response = ok(data)
    flow.set_cookie(response, call.request, call.deps, state)
    return response


async def _credential(call: Call) -> tuple[dict[str, Any], dict[str, Any]]:
    body = await call.json()
    credential = body.get("credential")
    if not isinstance(credential, dict) or not isinstance(credential.get("id"), str):
        raise ApiError("the browser sent no passkey credential")
    return body, credential


def _credential_id(credential: dict[str, Any]) -> str:
    """The credential id in the canonical unpadded base64url form it is stored in."""
    raw = str(credential.get("rawId") or credential["id"])
    try:
        return bytes_to_base64url(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise ApiError("the passkey credential id is malformed") from exc


async def _passkeys(call: Call) -> list[accounts_pb2.Passkey]:
    reply = await call.deps.accounts.ListPasskeys(
        accounts_pb2.ListPasskeysRequest(user_id=call.user_id), timeout=call.deps.timeout
    )
    return list(reply.passkeys)


@endpoint(ROLE_COMMON)
async def list_passkeys(call: Call) -> list[dict[str, Any]]:
    return [
        {"id": p.id, "name": p.name, "created_at": p.created_time, "last_used_at": p.last_used_time}
        for p in await _passkeys(call)
    ]


@endpoint(ROLE_COMMON)
async def delete_passkey(call: Call) -> None:
    await call.deps.accounts.DeletePasskey(
        accounts_pb2.DeletePasskeyRequest(user_id=call.user_id, id=call.path_int("id")),
        timeout=call.deps.timeout,
    )


@endpoint(ROLE_COMMON)
async def registration_options(call: Call) -> Response:
    """POST /api/user/passkey/register/options: what navigator.credentials.create() takes."""
    party = await relying_party(call)
    existing = [
        PublicKeyCredentialDescriptor(id=base64.urlsafe_b64decode(p.credential_id + "=="))
        for p in await _passkeys(call)
    ]
    options = generate_registration_options(
        rp_id=party.rp_id, rp_name=party.name, user_id=str(call.user_id).encode(),
        user_name=call.user.username, user_display_name=call.user.display_name or None,
        timeout=TIMEOUT_MS, exclude_credentials=existing,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
    )  # fmt: skip
    state = _remember(call, "register", options.challenge, call.user_id)
    return _answer(call, orjson.loads(options_to_json(options)), state)


@endpoint(ROLE_COMMON)
async def register(call: Call) -> Response:
    """POST /api/user/passkey/register {credential, name}: the browser's attestation."""
    body, credential = await _credential(call)
    state, challenge = await _take_challenge(call, "register", call.user_id)
    party = await relying_party(call)
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge,
            expected_rp_id=party.rp_id, expected_origin=party.origin,
        )  # fmt: skip
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise ApiError(f"{REFUSED}: {exc}") from exc
    transports = (credential.get("response") or {}).get("transports") or []
    known = {t.value for t in AuthenticatorTransport}
    passkey = await call.deps.accounts.AddPasskey(
        accounts_pb2.AddPasskeyRequest(
            user_id=call.user_id, credential_id=bytes_to_base64url(verified.credential_id),
            public_key=verified.credential_public_key, sign_count=verified.sign_count,
            name=str(body.get("name") or "")[:MAX_NAME],
            transports=",".join(str(t) for t in transports if t in known),
        ),
        timeout=call.deps.timeout,
    )  # fmt: skip
    return _answer(call, {"id": passkey.id, "name": passkey.name}, state)


@endpoint()
async def login_options(call: Call) -> Response:
    """POST /api/user/passkey/login/options: a challenge for any passkey of this site (the
    browser lets the user pick one; no username needed)."""
    party = await relying_party(call)
    options = generate_authentication_options(
        rp_id=party.rp_id, timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.PREFERRED,
    )  # fmt: skip
    state = _remember(call, "login", options.challenge)
    return _answer(call, orjson.loads(options_to_json(options)), state)


@endpoint()
async def login(call: Call) -> Response:
    """POST /api/user/passkey/login {credential}: the session, once the assertion verifies
    against the stored public key. A passkey is a second factor in itself, so TOTP is not
    asked for on top."""
    deps = call.deps
    _, credential = await _credential(call)
    state, challenge = await _take_challenge(call, "login")
    party = await relying_party(call)
    credential_id = _credential_id(credential)
    try:
        stored = await deps.accounts.GetPasskey(
            accounts_pb2.GetPasskeyRequest(credential_id=credential_id), timeout=deps.timeout
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        raise ApiError("this passkey is not registered here") from exc
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=party.rp_id,
            expected_origin=party.origin, credential_public_key=stored.public_key,
            credential_current_sign_count=stored.sign_count,
        )  # fmt: skip
    except (WebAuthnException, KeyError, TypeError, ValueError) as exc:
        raise ApiError(f"{REFUSED}: {exc}") from exc
    reply = await deps.accounts.SignInWithPasskey(
        accounts_pb2.SignInWithPasskeyRequest(
            credential_id=credential_id, sign_count=verified.new_sign_count,
            client_ip=await client_ip(call.request, deps),
            user_agent=call.request.headers.get("user-agent", ""),
        ),
        timeout=deps.timeout,
    )  # fmt: skip
    response = signed_in(call, reply.user, reply.session_id, reply.expire_time)
    flow.set_cookie(response, call.request, deps, state)
    return response


ROUTES = [
    Route("/api/user/passkey", list_passkeys, methods=["GET"]),
    Route("/api/user/passkey/{id:int}", delete_passkey, methods=["DELETE"]),
    Route("/api/user/passkey/register/options", registration_options, methods=["POST"]),
    Route("/api/user/passkey/register", register, methods=["POST"]),
    Route("/api/user/passkey/login/options", login_options, methods=["POST"]),
    Route("/api/user/passkey/login", login, methods=["POST"]),
]
