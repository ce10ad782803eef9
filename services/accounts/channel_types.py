"""Known channel types (upstream `common/constants.go`): id -> UI name."""

from __future__ import annotations

from types import MappingProxyType

from services.shared.channel_types import SUPPORTED_TYPES, TASK_TYPES

CHANNEL_TYPES = MappingProxyType(
    {
        1: "OpenAI",
        2: "Midjourney Proxy",
        3: "Azure OpenAI",
        4: "Ollama",
        5: "Midjourney Proxy Plus",
        6: "OpenAIMax",
        7: "OhMyGPT",
        8: "Custom",
        9: "AILS",
        10: "AIProxy",
        11: "Google PaLM2",
        12: "API2GPT",
        13: "AIGC2D",
        14: "Anthropic Claude",
        15: "Baidu Wenxin Qianfan",
        16: "Zhipu BigModel",
        17: "Alibaba Tongyi Qianwen",
        18: "iFlytek Spark",
        19: "360 Zhinao",
        20: "OpenRouter",
        21: "AI Proxy Library",
        22: "FastGPT",
        23: "Tencent Hunyuan",
        24: "Google Gemini",
        25: "Moonshot",
        27: "Perplexity",
        31: "01.AI",
        33: "AWS Claude",
        34: "Cohere",
        35: "MiniMax",
        36: "Suno API",
        37: "Dify",
        38: "Jina",
        39: "Cloudflare Workers AI",
        40: "SiliconFlow",
        41: "Google Vertex AI",
        42: "Mistral AI",
        43: "DeepSeek",
        44: "MokaAI M3E",
        45: "VolcEngine Ark",
        46: "Baidu Qianfan V2",
        47: "Xinference",
        48: "xAI",
        49: "GitHub Models",
    }
)

# Known ids that cannot work: refused at save time with the reason.
UNSUPPORTED_TYPES = MappingProxyType(
    {
        21: "AI Proxy Library has no adaptor upstream (requests fail with invalid api type)",
        26: "Zhipu v4 was folded into type 16 (Zhipu BigModel); use 16",
    }
)
# Known types whose provider speaks its own API: without their adaptor the relay would send
# the key to OpenAI's address in OpenAI's format, so saving one is refused until it exists.
NO_ADAPTOR_YET = (
    frozenset(CHANNEL_TYPES) - SUPPORTED_TYPES - TASK_TYPES - frozenset(UNSUPPORTED_TYPES)
)

GEMINI = 24
VERTEX_AI = 41
# Types served by the operator's own server (no provider address to default to): saving one
# without a base URL is refused instead of failing every request.
NEEDS_BASE_URL = frozenset({44, 47})  # MokaAI M3E, Xinference
# Types whose single key is a JSON document (never split on commas).
JSON_KEY_TYPES = frozenset({VERTEX_AI})


def is_known(type_id: int) -> bool:
    return type_id in CHANNEL_TYPES
