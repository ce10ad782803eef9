"""The duration of an uploaded audio file, read with mutagen (no ffprobe, no temp file)."""

from __future__ import annotations

import io
import logging

logger = logging.getLogger(__name__)


def duration_seconds(data: bytes, filename: str = "") -> float | None:
    """Seconds of audio in `data` (mp3, m4a, wav, flac, ogg, webm-free formats…); None when
    the format is not recognised."""
    try:
        import mutagen  # imported on first use: only speech-to-text needs it
    except ImportError:
        logger.error("mutagen is not installed: audio durations cannot be read")
        return None
    buffer = io.BytesIO(data)
    buffer.name = filename or "audio"  # mutagen uses the name as a format hint
    try:
        parsed = mutagen.File(buffer)
    except (mutagen.MutagenError, ValueError, EOFError, OSError) as exc:
        logger.info("audio duration not read: %s", type(exc).__name__)
        return None
    info = getattr(parsed, "info", None) if parsed is not None else None
    length = getattr(info, "length", None)
    if isinstance(length, int | float) and length >= 0:
        return float(length)
    return None
