"""Fault-injection, bad-input and security tests (issue 7). A package, so its conftest does not
shadow the ``conftest`` module other test folders import from."""
