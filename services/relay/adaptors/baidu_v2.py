"""Baidu Qianfan v2 (46): OpenAI-compatible /v2 paths; a key `appid|key` adds the appid header."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor


class BaiduV2Adaptor(OpenAIAdaptor):
    supports_stream_options = False
    default_base_url = "https://qianfan.baidubce.com"

    def url(self, target: Target) -> str:
        return self.base_url(target) + "/v2" + target.endpoint.path.removeprefix("/v1")

    def headers(self, target: Target) -> dict[str, str]:
        appid, sep, key = target.key.partition("|")
        if not sep:
            return {"Authorization": f"Bearer {target.key}"}
        return {"Authorization": f"Bearer {key}", "appid": appid}
