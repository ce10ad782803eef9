"""Veloera accounts service."""
