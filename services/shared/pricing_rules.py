"""Hard-coded family rules of upstream `relay/helper/price.go` and `service/quota.go`: completion,
audio, image and task ratios.
"""

from __future__ import annotations

# Create-cache ratio for Claude is built in upstream (no option key for it).
CLAUDE_CACHE_CREATION_RATIO = 1.25
# Ratio used for a model nobody priced when unpriced models are accepted (upstream
# `relay/helper/price.go`).
UNPRICED_MODEL_RATIO = 37.5
# Default USD per call of a task model with neither a price nor a ratio (upstream
# `service/quota.go`).
DEFAULT_TASK_PRICE = 0.1
# An image model without a fixed price costs this many USD per image per unit of model ratio.
IMAGE_USD_PER_RATIO = 0.0025
# Task actions that are free upstream (INPAINT, CUSTOM_ZOOM).
FREE_TASKS = frozenset({"mj_inpaint", "mj_custom_zoom"})
TASK_PREFIXES = ("mj_", "suno_", "swap_face")

# (audio ratio, audio completion ratio) by model (upstream `setting/operation_setting/model-
# ratio.go`).
_AUDIO_RATIOS: dict[str, tuple[float, float]] = {
    "gpt-4o-realtime-preview": (8.0, 2.0),
    "gpt-4o-realtime-preview-2024-10-01": (8.0, 2.0),
    "gpt-4o-mini-realtime-preview": (10 / 0.6, 2.0),
    "gpt-4o-mini-realtime-preview-2024-12-17": (10 / 0.6, 2.0),
    "gpt-4o-realtime-preview-2024-12-17": (20.0, 2.0),
    "gpt-4o-audio-preview": (16.0, 2.0),
    "gpt-4o-audio-preview-2024-10-01": (16.0, 2.0),
    "gpt-4o-mini-audio-preview": (200 / 3, 2.0),
    "gpt-4o-mini-audio-preview-2024-12-17": (200 / 3, 2.0),
    "gpt-4o-audio-preview-2024-12-17": (40.0, 2.0),
}

_SIZE_RATIOS = {
    "256x256": 0.4,
    "512x512": 0.45,
    "1024x1024": 1.0,
    "1024x1792": 2.0,
    "1792x1024": 2.0,
}
_WIDE_SIZES = frozenset({"1024x1792", "1792x1024"})


def is_task_model(model: str) -> bool:
    return model.startswith(TASK_PREFIXES)


def audio_ratios(model: str) -> tuple[float, float] | None:
    """(audio ratio, audio completion ratio) of an audio model, else None."""
    return _AUDIO_RATIOS.get(model.lower())


def image_size_ratio(size: str) -> float:
    """Size multiplier of an image request; unknown or empty sizes count as 1024x1024."""
    return _SIZE_RATIOS.get(size.strip().lower(), 1.0)


def image_quality_ratio(model: str, quality: str, size: str) -> float:
    """dall-e-3 `hd`: x2, or x1.5 for the tall and wide sizes; everything else x1."""
    if quality.strip().lower() != "hd" or not model.lower().startswith("dall-e-3"):
        return 1.0
    return 1.5 if size.strip().lower() in _WIDE_SIZES else 2.0


def locked_completion_ratio(model: str) -> float | None:
    """Hard-coded family rules that win over the CompletionRatio option (upstream
    `setting/operation_setting/model-ratio.go`).
    """
    name = model.lower()
    if name.startswith("gpt-4") and not name.endswith(("-all", "-gizmo-*")):
        if name.startswith("gpt-4o"):
            return 3.0 if name == "gpt-4o-2024-05-13" else 4.0
        if name.startswith(("gpt-4.1", "gpt-4.5")):
            return 4.0
        if name.startswith("gpt-4-turbo") or name.endswith("-preview"):
            return 3.0
        return 2.0
    if name.startswith(("o1", "o3", "o4")):
        return 4.0
    if name == "chatgpt-4o-latest":
        return 3.0
    return _locked_other_families(name)


def _locked_other_families(name: str) -> float | None:
    if "claude-instant-1" in name or "claude-2" in name:
        return 3.0
    if "claude-3" in name or "claude-4" in name or "claude-sonnet-4" in name:
        return 5.0
    if "claude-opus-4" in name:
        return 5.0
    if name.startswith("gpt-3.5"):
        if name == "gpt-3.5-turbo" or name.endswith("0125"):
            return 3.0
        if name.endswith("1106"):
            return 2.0
        return 4.0 / 3.0
    if name.startswith("gemini-"):
        if name.startswith("gemini-2.5-pro-preview"):
            return 8.0
        if name.startswith("gemini-2.5-flash-preview"):
            return 3.5 / 0.6
        return 4.0
    if name.startswith("command"):
        return _command_family(name)
    if name in {"deepseek-chat", "deepseek-reasoner"}:
        return 4.0
    if name.startswith(("ernie-speed-", "ernie-lite-")):
        return 2.0
    return None


def _command_family(name: str) -> float:
    if name == "command-r":
        return 3.0
    if name == "command-r-plus":
        return 5.0
    return 4.0


def completion_ratio(model: str, configured: dict[str, float]) -> float:
    """Locked family rule, else the option value for the model, else 1."""
    locked = locked_completion_ratio(model)
    if locked is not None:
        return locked
    return float(configured.get(model, 1.0))


def cache_creation_ratio(model: str) -> float:
    return CLAUDE_CACHE_CREATION_RATIO if "claude" in model.lower() else 1.0
