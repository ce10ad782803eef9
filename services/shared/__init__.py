"""Veloera shared service."""
