"""Azure OpenAI (3): deployment URLs, `api-key` header, API version from `other` or the env."""

from __future__ import annotations

from services.relay.adaptors.base import Target
from services.relay.adaptors.openai import OpenAIAdaptor

DEFAULT_API_VERSION = "2024-12-01-preview"
KEEP_DOTS_SINCE = 1746835200  # 2025-05-10 00:00 UTC: older channels get dot-less deployments


def deployment(target: Target) -> str:
    """The deployment name: channels created before 2025-05-10 drop the dots (`gpt-3.5-turbo`
    → `gpt-35-turbo`), as Veloera did; newer ones keep the model name as it is."""
    created = target.channel.created_time
    if 0 < created < KEEP_DOTS_SINCE:
        return target.model.replace(".", "")
    return target.model


class AzureAdaptor(OpenAIAdaptor):
    default_base_url = ""

    def __init__(self, default_api_version: str = DEFAULT_API_VERSION) -> None:
        self.default_api_version = default_api_version

    def url(self, target: Target) -> str:
        version = target.channel.other.strip() or self.default_api_version
        task = target.endpoint.task
        if task == "responses":
            return f"{self.base_url(target)}/openai/v1/responses?api-version={version}"
        return (
            f"{self.base_url(target)}/openai/deployments/{deployment(target)}/{task}"
            f"?api-version={version}"
        )

    def headers(self, target: Target) -> dict[str, str]:
        return {"api-key": target.key}
