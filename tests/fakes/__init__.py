"""Fake upstream providers speaking the real wire formats, on loopback."""
