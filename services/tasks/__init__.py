"""Veloera tasks service."""
