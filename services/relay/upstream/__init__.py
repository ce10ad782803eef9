"""Talking to providers: the shared HTTP sessions and proxies, the request shaping per
channel, SSE relaying with keep-alives, and scrubbing keys out of what upstreams say."""
