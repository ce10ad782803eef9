"""OpenAI-compatible types that differ only in base URL and path prefix: a data table."""

from __future__ import annotations

from dataclasses import dataclass

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor


@dataclass(frozen=True, slots=True)
class Compat:
    base_url: str
    prefix: str = "/v1"  # replaces the `/v1` of OpenAI's paths


class CompatAdaptor(OpenAIAdaptor):
    """An OpenAI-compatible upstream with its own default base URL and path prefix."""

    supports_stream_options = False

    def __init__(self, spec: Compat) -> None:
        self.default_base_url = spec.base_url
        self.prefix = spec.prefix

    def url(self, target: Target) -> str:
        return self.base_url(target) + self.prefix + target.endpoint.path.removeprefix("/v1")


COMPAT_TYPES: dict[int, Compat] = {
    6: Compat("https://api.openaimax.com"),  # OpenAIMax
    7: Compat("https://api.ohmygpt.com"),  # OhMyGPT
    9: Compat("https://api.caipacity.com"),  # AILS
    10: Compat("https://api.aiproxy.io"),  # AIProxy
    12: Compat("https://api.api2gpt.com"),  # API2GPT
    13: Compat("https://api.aigc2d.com"),  # AIGC2D
    16: Compat("https://open.bigmodel.cn", "/api/paas/v4"),  # Zhipu v4
    19: Compat("https://ai.360.cn"),  # 360 Zhinao
    22: Compat("https://fastgpt.run/api/openapi"),  # FastGPT
    25: Compat("https://api.moonshot.cn"),  # Moonshot
    27: Compat("https://api.perplexity.ai", ""),  # Perplexity
    31: Compat("https://api.lingyiwanwu.com"),  # 01.AI
    40: Compat("https://api.siliconflow.cn"),  # SiliconFlow
    42: Compat("https://api.mistral.ai"),  # Mistral
    47: Compat(""),  # Xinference: the base URL is the operator's server
    49: Compat("https://models.github.ai/inference", ""),  # GitHub Models
}
