"""Channel types the relay has an adaptor for: the one list accounts validates saves against.

A type without an adaptor would be sent through OpenAI's adaptor, key and all, to the wrong
provider (an Anthropic key as `Authorization: Bearer` to api.openai.com): accounts refuses to
save such a channel and the relay never routes to one.
"""

from __future__ import annotations

OPENAI = 1
AZURE = 3
OLLAMA = 4
CUSTOM = 8
ANTHROPIC = 14
GEMINI = 24
AWS = 33
VERTEX_AI = 41
OPENROUTER = 20
MINIMAX = 35
CLOUDFLARE = 39
DEEPSEEK = 43
VOLCENGINE = 45
BAIDU = 15
TENCENT = 23
XUNFEI = 18
ALI = 17
BAIDU_V2 = 46
XAI = 48
JINA = 38
COHERE = 34
DIFY = 37
MOKAAI = 44
# OpenAI-compatible types that differ only in base URL and path prefix (relay adaptors/compat.py)
COMPAT = frozenset({6, 7, 9, 10, 12, 13, 16, 19, 22, 25, 27, 31, 40, 42, 47, 49})

SUPPORTED_TYPES = frozenset(
    {OPENAI, AZURE, OLLAMA, CUSTOM, OPENROUTER, MINIMAX, CLOUDFLARE, DEEPSEEK, VOLCENGINE}
    | {
        BAIDU,
        TENCENT,
        XUNFEI,
        ALI,
        BAIDU_V2,
        XAI,
        ANTHROPIC,
        GEMINI,
        AWS,
        VERTEX_AI,
        JINA,
        MOKAAI,
        COHERE,
        DIFY,
    }
    | COMPAT
)


# Task platforms: served by the relay's /mj and /suno routes (routes/tasks.py), never by an
# adaptor (their models are the per-action task names, mj_imagine or suno_music).
MIDJOURNEY = 2
MIDJOURNEY_PLUS = 5
SUNO = 36
MIDJOURNEY_TYPES = frozenset({MIDJOURNEY, MIDJOURNEY_PLUS})
TASK_TYPES = MIDJOURNEY_TYPES | {SUNO}


def is_supported(type_id: int) -> bool:
    return type_id in SUPPORTED_TYPES or type_id in TASK_TYPES


# Types whose provider has a balance query (upstream `controller/channel-billing.go`; the
# queries are in services/relay/health/probe.py).
API2GPT = 12
AIGC2D = 13
SILICONFLOW = 40
BALANCE_TYPES = frozenset({OPENAI, CUSTOM, API2GPT, AIGC2D, OPENROUTER, SILICONFLOW, DEEPSEEK})
