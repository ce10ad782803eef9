"""Veloera cli service."""
