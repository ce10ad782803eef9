"""Veloera web service."""
