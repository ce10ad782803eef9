"""Channel adaptors by channel type (upstream `common/constants.go`)."""

from __future__ import annotations

from services.relay.adaptors.ali import AliAdaptor
from services.relay.adaptors.anthropic import AnthropicAdaptor
from services.relay.adaptors.azure import DEFAULT_API_VERSION, AzureAdaptor
from services.relay.adaptors.baidu import BaiduAdaptor
from services.relay.adaptors.baidu_v2 import BaiduV2Adaptor
from services.relay.adaptors.base import Adaptor
from services.relay.adaptors.bedrock import BedrockAdaptor
from services.relay.adaptors.cloudflare import CloudflareAdaptor
from services.relay.adaptors.cohere import CohereAdaptor
from services.relay.adaptors.compat import COMPAT_TYPES, CompatAdaptor
from services.relay.adaptors.custom import CustomAdaptor
from services.relay.adaptors.deepseek import DeepSeekAdaptor
from services.relay.adaptors.dify import DifyAdaptor
from services.relay.adaptors.gemini import GeminiAdaptor
from services.relay.adaptors.jina import JinaAdaptor
from services.relay.adaptors.minimax import MiniMaxAdaptor
from services.relay.adaptors.mokaai import MokaAIAdaptor
from services.relay.adaptors.ollama import OllamaAdaptor
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.adaptors.openrouter import OpenRouterAdaptor
from services.relay.adaptors.tencent import TencentAdaptor
from services.relay.adaptors.vertex import VertexAdaptor
from services.relay.adaptors.volcengine import VolcEngineAdaptor
from services.relay.adaptors.xai import XAIAdaptor
from services.relay.adaptors.xunfei import XunfeiAdaptor
from services.shared import channel_types as types

OPENAI = types.OPENAI
_OPENAI = OpenAIAdaptor()
# Channel types whose API has OpenAI's /v1/responses: a Responses request passes through to
# them; every other type gets it as chat (ingress/responses.py).
RESPONSES_TYPES = frozenset({OPENAI, types.AZURE, types.XAI})


class Adaptors:
    """Adaptor per channel type. A type without one is never guessed at: OpenAI's adaptor would
    send its key to the wrong provider (routing already skips such channels)."""

    def __init__(
        self,
        azure_api_version: str = DEFAULT_API_VERSION,
        *,
        any_token_uri: bool = False,
        cohere_safety: str = "NONE",
    ) -> None:
        table: dict[int, Adaptor] = {t: CompatAdaptor(spec) for t, spec in COMPAT_TYPES.items()}
        table.update(
            {
                OPENAI: _OPENAI,
                types.AZURE: AzureAdaptor(azure_api_version),
                types.OLLAMA: OllamaAdaptor(),
                types.CUSTOM: CustomAdaptor(),
                types.OPENROUTER: OpenRouterAdaptor(),
                types.MINIMAX: MiniMaxAdaptor(),
                types.CLOUDFLARE: CloudflareAdaptor(),
                types.DEEPSEEK: DeepSeekAdaptor(),
                types.VOLCENGINE: VolcEngineAdaptor(),
                types.BAIDU: BaiduAdaptor(),
                types.TENCENT: TencentAdaptor(),
                types.ALI: AliAdaptor(),
                types.XUNFEI: XunfeiAdaptor(),
                types.BAIDU_V2: BaiduV2Adaptor(),
                types.XAI: XAIAdaptor(),
                types.ANTHROPIC: AnthropicAdaptor(),
                types.GEMINI: GeminiAdaptor(),
                types.AWS: BedrockAdaptor(),
                types.VERTEX_AI: VertexAdaptor(any_token_uri=any_token_uri),
                types.JINA: JinaAdaptor(),
                types.COHERE: CohereAdaptor(cohere_safety),
                types.DIFY: DifyAdaptor(),
                types.MOKAAI: MokaAIAdaptor(),
            }
        )
        assert set(table) == types.SUPPORTED_TYPES, "shared/channel_types.py lists the adaptors"
        self._table = table

    @staticmethod
    def speaks_responses(channel_type: int) -> bool:
        return channel_type in RESPONSES_TYPES

    def for_type(self, channel_type: int) -> Adaptor:
        """The type's adaptor; LookupError for a type without one."""
        adaptor = self._table.get(channel_type)
        if adaptor is None:
            raise LookupError(f"channel type {channel_type} has no adaptor")
        return adaptor
