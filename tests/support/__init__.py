"""Helpers shared by the tests (no test module imports another); fakes of the providers at
the edge of the system are in tests/fakes/."""
