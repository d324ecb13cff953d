"""Basic auth and TLS of the metrics endpoint, for a host other than loopback (`http.expose: true`).

As Prometheus' exporter-toolkit: the password is stored as a bcrypt hash (`edge hash-password` makes one),
checked with bcrypt (constant time in the password), and a successful check is cached by a SHA-256 of the
credentials, so a scrape every 10 s does not pay bcrypt's ~0.25 s on a Pi each time. Failed checks are not
cached, and run one at a time: a client guessing passwords gets at most one core of bcrypt, never all.

    auth = BasicAuth("prometheus", "$2b$12$..."); auth.check(request.headers.get("Authorization"))
    ctx = server_tls_context(Path("cert.pem"), Path("key.pem"))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
import threading
from pathlib import Path

import bcrypt

from edge.errors import CctvkitError

CACHE_SIZE = 64  # distinct good credentials remembered: a scraper or two; beyond this the cache restarts
# Checked against when the user name is wrong, so a wrong user costs the same time as a wrong password.
_DUMMY_HASH = bcrypt.hashpw(b"not the password", bcrypt.gensalt(4))


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash for `http.basic_auth.password_hash` (12 rounds: bcrypt's default, ~0.25 s on a Pi 5)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode()


class BasicAuth:
    def __init__(self, user: str, password_hash: str, realm: str = "cctvkit-edge"):
        self.user = user.encode()
        self.password_hash = password_hash.encode()
        self.challenge = f'Basic realm="{realm}", charset="UTF-8"'
        self._good: set[bytes] = set()
        self._lock = threading.Lock()  # guards _good and serialises bcrypt (see the module docstring)

    def check(self, header: str | None) -> bool:
        """True when `header` (the request's Authorization) carries the configured user and password."""
        creds = _parse_basic(header)
        if creds is None:
            return False
        user, password = creds
        digest = hashlib.sha256(user + b"\0" + password).digest()  # \0: no user:password re-split collides
        with self._lock:
            if digest in self._good:
                return True
            user_ok = hmac.compare_digest(user, self.user)
            # bcrypt runs whatever the user name: its time must not say whether the user exists.
            password_ok = bcrypt.checkpw(password, self.password_hash if user_ok else _DUMMY_HASH)
            if user_ok and password_ok:
                if len(self._good) >= CACHE_SIZE:
                    self._good.clear()
                self._good.add(digest)
                return True
        return False


def _parse_basic(header: str | None) -> tuple[bytes, bytes] | None:
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    return (user, password) if sep else None


def server_tls_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """A server context of TLS 1.2 or later with the certificate chain and key of `http.tls`."""
    for key, path in (("cert_file", cert_file), ("key_file", key_file)):
        if not path.is_file():
            raise CctvkitError(f"http.tls.{key} not found", path,
                               "give the path of a PEM file (relative paths follow the config file)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError) as e:
        raise CctvkitError(f"http.tls: cannot load the certificate and key ({e})", cert_file,
                           "give a PEM certificate (chain) in cert_file and its private key in key_file") from e
    return ctx
