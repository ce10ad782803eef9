"""Veloera relay service."""
