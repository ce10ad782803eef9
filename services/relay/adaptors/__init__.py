"""Channel adaptors by channel type (reference §5.1)."""

from __future__ import annotations

from services.relay.adaptors.azure import DEFAULT_API_VERSION, AzureAdaptor
from services.relay.adaptors.baidu_v2 import BaiduV2Adaptor
from services.relay.adaptors.base import Adaptor
from services.relay.adaptors.cloudflare import CloudflareAdaptor
from services.relay.adaptors.compat import COMPAT_TYPES, CompatAdaptor
from services.relay.adaptors.custom import CustomAdaptor
from services.relay.adaptors.deepseek import DeepSeekAdaptor
from services.relay.adaptors.minimax import MiniMaxAdaptor
from services.relay.adaptors.ollama import OllamaAdaptor
from services.relay.adaptors.openai import OpenAIAdaptor
from services.relay.adaptors.openrouter import OpenRouterAdaptor
from services.relay.adaptors.volcengine import VolcEngineAdaptor
from services.relay.adaptors.xai import XAIAdaptor

OPENAI = 1
_OPENAI = OpenAIAdaptor()


class Adaptors:
    """Adaptor per channel type; unknown types speak OpenAI's format at their base URL."""

    def __init__(self, azure_api_version: str = DEFAULT_API_VERSION) -> None:
        table: dict[int, Adaptor] = {t: CompatAdaptor(spec) for t, spec in COMPAT_TYPES.items()}
        table.update(
            {
                OPENAI: _OPENAI,
                3: AzureAdaptor(azure_api_version),
                4: OllamaAdaptor(),
                8: CustomAdaptor(),
                20: OpenRouterAdaptor(),
                35: MiniMaxAdaptor(),
                39: CloudflareAdaptor(),
                43: DeepSeekAdaptor(),
                45: VolcEngineAdaptor(),
                46: BaiduV2Adaptor(),
                48: XAIAdaptor(),
            }
        )
        self._table = table

    def for_type(self, channel_type: int) -> Adaptor:
        return self._table.get(channel_type, _OPENAI)
