"""The sshd test hosts fixture (fleet_hosts.py: a module of its own, since every test folder's conftest.py
would be `conftest` to an import)."""

from fleet_hosts import test_hosts  # noqa: F401  (a fixture: pytest finds it here)
