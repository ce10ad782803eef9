"""Prices: the option table (stored values over defaults), how a model's price resolves, the
live copy every replica reloads on a change, and what the console and pricing page read. The
price arithmetic itself is services/shared/pricing.py (the relay uses it too)."""
