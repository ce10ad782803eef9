"""Image tokens (upstream `service/token_counter.go`) and the SSRF guard of image downloads."""

from __future__ import annotations

import base64
import struct

import httpx
import pytest

from services.relay.metering.media import (
    FLAT_IMAGE,
    MediaError,
    MediaPolicy,
    dimensions,
    fetch_head,
    image_tokens,
    is_public,
    tile_tokens,
)

POLICY = MediaPolicy(enabled=True, enabled_non_stream=True, max_bytes=1024 * 1024)


def png(width: int, height: int) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\0\0\0\rIHDR" + struct.pack(">II", width, height) + bytes(8)


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_dimensions_of_common_formats() -> None:
    assert dimensions(png(640, 480)) == (640, 480)
    assert dimensions(b"GIF89a" + struct.pack("<HH", 3, 7) + bytes(8)) == (3, 7)
    jpeg = b"\xff\xd8\xff\xe0\x00\x04ab\xff\xc0\x00\x11\x08" + struct.pack(">HH", 50, 40) + bytes(9)
    assert dimensions(jpeg) == (40, 50)
    with pytest.raises(MediaError):
        dimensions(b"not an image")


def test_tile_math() -> None:
    assert tile_tokens(512, 512, "gpt-4o") == 85 + 170
    assert tile_tokens(1024, 1024, "gpt-4o") == 85 + 170 * 4  # 768x768 -> 2x2 tiles
    assert tile_tokens(4096, 1024, "gpt-4o") == 85 + 170 * 4  # fits 2048x512: 4x1 tiles
    assert tile_tokens(512, 512, "gpt-4o-mini") == 2833 + 5667


async def test_image_tokens_by_detail_and_policy() -> None:
    async with httpx.AsyncClient() as client:
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": data_url(png(512, 512))}},
                    {"type": "image_url", "image_url": {"url": "x", "detail": "low"}},
                ],
            }
        ]
        assert await image_tokens(client, messages, "gpt-4o", stream=True, policy=POLICY) == (
            255 + 85
        )
        flat = MediaPolicy(enabled=False, enabled_non_stream=True, max_bytes=1)
        assert await image_tokens(client, messages, "gpt-4o", stream=True, policy=flat) == (
            FLAT_IMAGE + 85
        )
        glm = await image_tokens(client, messages, "glm-4v", stream=True, policy=POLICY)
        assert glm == 2 * 1047


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fe80::1", "0.0.0.0",
     "::ffff:127.0.0.1", "100.64.0.1"],
)  # fmt: skip
def test_non_public_addresses(address: str) -> None:
    assert not is_public(address)


def test_public_address() -> None:
    assert is_public("8.8.8.8") and is_public("2606:4700:4700::1111")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:1/x.png",
        "http://localhost/x.png",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x.png",
        "file:///etc/passwd",
        "http://[::1",  # malformed: a MediaError (flat estimate), not a 500
        "http://example.com:99999/x.png",
        "http://" + "a" * 70 + ".example/x.png",  # a label IDNA cannot encode
    ],
)
async def test_downloads_to_private_hosts_are_refused_before_connecting(url: str) -> None:
    attempts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        return httpx.Response(200, content=png(1, 1))

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(MediaError):
            await fetch_head(client, url, 1024)
    assert attempts == []  # never connected


async def test_unknown_image_falls_back_to_the_flat_estimate() -> None:
    async with httpx.AsyncClient() as client:
        messages = [{"content": [{"type": "image_url", "image_url": "http://127.0.0.1/a.png"}]}]
        tokens = await image_tokens(client, messages, "gpt-4o", stream=False, policy=POLICY)
    assert tokens == FLAT_IMAGE
