"""Async jobs (Midjourney, Suno, video): the upstream task protocols, submits and polls."""
