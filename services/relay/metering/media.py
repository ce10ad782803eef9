"""Image tokens of chat requests (upstream `service/token_counter.go`) and SSRF-safe image
downloads.

An image URL is fetched only to read its size. The host is resolved first and every address
must be public (no private, loopback, link-local, reserved or multicast address); the
connection then goes to the checked address (Host header and TLS SNI keep the name), so a DNS
answer cannot change between the check and the connection. Downloads stop at
`MAX_FILE_DOWNLOAD_MB` and only read as much as the size needs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import logging
import math
import socket
import struct
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from services.shared.numbers import ascii_int

logger = logging.getLogger(__name__)

LOW_DETAIL = 85
FLAT_IMAGE = 3 * 85
GLM4V_IMAGE = 1047
DOWNLOAD_TIMEOUT = httpx.Timeout(10.0)
HEADER_BYTES = 256 * 1024  # enough for the size of nearly every PNG / GIF / WebP / JPEG


class MediaError(Exception):
    """An image that cannot be read (refused address, too large, unknown format)."""


@dataclass(frozen=True, slots=True)
class MediaPolicy:
    enabled: bool  # GET_MEDIA_TOKEN
    enabled_non_stream: bool  # GET_MEDIA_TOKEN_NOT_STREAM
    max_bytes: int  # MAX_FILE_DOWNLOAD_MB


def tile_tokens(width: int, height: int, model: str) -> int:
    """High/auto detail: fit in 2048, short side to 768, 512-px tiles."""
    base, per_tile = (2833, 5667) if model.startswith("gpt-4o-mini") else (85, 170)
    if width <= 0 or height <= 0:
        return base + per_tile
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = int(width * scale), int(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = int(width * scale), int(height * scale)
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return base + per_tile * tiles


def image_parts(messages: list[Any]) -> list[tuple[str, str]]:
    """(url, detail) of every image part in chat messages."""
    found: list[tuple[str, str]] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            if isinstance(image, str):
                found.append((image, "auto"))
            elif isinstance(image, dict) and isinstance(image.get("url"), str):
                detail = image.get("detail")
                found.append((image["url"], detail if isinstance(detail, str) else "auto"))
    return found


async def image_tokens(
    client: httpx.AsyncClient,
    messages: list[Any],
    model: str,
    *,
    stream: bool,
    policy: MediaPolicy,
) -> int:
    parts = image_parts(messages)
    if not parts:
        return 0
    if model.startswith("glm-4v"):
        return GLM4V_IMAGE * len(parts)
    precise = policy.enabled and (stream or policy.enabled_non_stream)
    total = 0
    for url, detail in parts:
        if detail == "low":
            total += LOW_DETAIL
        elif not precise:
            total += FLAT_IMAGE
        else:
            try:
                width, height = await image_size(client, url, policy.max_bytes)
            except MediaError as exc:
                logger.info("image size not read (%s); flat estimate used", exc)
                total += FLAT_IMAGE
                continue
            total += tile_tokens(width, height, model)
    return total


async def image_size(client: httpx.AsyncClient, url: str, max_bytes: int) -> tuple[int, int]:
    if url.startswith("data:"):
        return dimensions(decode_data_url(url, max_bytes))
    return dimensions(await fetch_head(client, url, max_bytes))


def decode_data_url(url: str, max_bytes: int) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise MediaError("unsupported data URL")
    if len(payload) * 3 // 4 > max_bytes:
        raise MediaError("image too large")
    try:
        return base64.b64decode(payload[: (HEADER_BYTES * 4 // 3) // 4 * 4], validate=False)
    except (binascii.Error, ValueError):
        raise MediaError("invalid base64 image") from None


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
        or not ip.is_global
    )


async def resolve_public(host: str, port: int) -> str:
    """One checked address of `host`; MediaError when any address is not public."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # UnicodeError: a name IDNA cannot encode
        raise MediaError("host does not resolve") from None
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise MediaError("host does not resolve")
    for address in addresses:
        if not is_public(address):
            raise MediaError("image host resolves to a non-public address")
    return addresses[0]


async def fetch_head(client: httpx.AsyncClient, url: str, max_bytes: int) -> bytes:
    try:  # `http://[::1` or port 99999: the client's mistake, not ours
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise MediaError("malformed image URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MediaError("unsupported image URL")
    host = parts.hostname
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    address = await resolve_public(host, port)
    netloc = f"[{address}]" if ":" in address else address
    if explicit_port:
        netloc += f":{explicit_port}"
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = host if not explicit_port else f"{host}:{explicit_port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    request = client.build_request(
        "GET",
        pinned,
        headers={"Host": host_header},
        timeout=DOWNLOAD_TIMEOUT,
        extensions=extensions,
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as exc:
        raise MediaError(f"download failed: {type(exc).__name__}") from None
    try:
        if response.status_code != 200:
            raise MediaError(f"download answered {response.status_code}")
        declared = ascii_int(response.headers.get("content-length", ""))
        if declared is not None and declared > max_bytes:
            raise MediaError("image too large")
        buffer = bytearray()
        async for chunk in response.aiter_bytes():
            buffer += chunk
            if len(buffer) > max_bytes:
                raise MediaError("image too large")
            if len(buffer) >= HEADER_BYTES:
                break
        return bytes(buffer)
    except httpx.HTTPError as exc:
        raise MediaError(f"download failed: {type(exc).__name__}") from None
    finally:
        await response.aclose()


def dimensions(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG, GIF, WebP or JPEG header."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return int(width), int(height)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return int(width), int(height)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg(data)
    raise MediaError("unknown image format")


def _webp(data: bytes) -> tuple[int, int]:
    kind = data[12:16]
    if kind == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    if kind == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise MediaError("unknown WebP layout")


def _jpeg(data: bytes) -> tuple[int, int]:
    index = 2
    while index + 9 < len(data):
        if data[index] != 0xFF:
            index += 1
            continue
        marker = data[index + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[index + 5 : index + 7], "big")
            width = int.from_bytes(data[index + 7 : index + 9], "big")
            return width, height
        index += 2 + length
    raise MediaError("JPEG size not found")
