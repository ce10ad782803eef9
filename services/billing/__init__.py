"""Veloera billing service."""
