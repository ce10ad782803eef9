"""Where a request goes: the routing table (channels, keys, abilities) loaded from accounts'
snapshot and kept current by deltas, and the retry rules."""
