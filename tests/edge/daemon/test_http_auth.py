"""The metrics endpoint beyond loopback (issue 14 row 4): config checks, basic auth, TLS, edge hash-password.

As Prometheus' exporter-toolkit: another host than loopback needs http.expose and basic auth with a bcrypt
hash; TLS is optional. Real sockets, a real self-signed certificate made by the openssl CLI.
"""

from __future__ import annotations

import base64
import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from edge.config import load_config
from edge.errors import CctvkitError
from edge.httpauth import BasicAuth, hash_password, server_tls_context
from edge.httpd import MAX_CONNECTIONS, MetricsServer, make_metrics_server

ROOT = Path(__file__).resolve().parents[3]
HASH = hash_password("s3cret", rounds=4)  # the lowest cost: the tests check the logic, not bcrypt's speed
BASE = {"model": {"file": "x.onnx"}, "source": {"type": "file", "path": "v.avi"}}


def write_config(tmp_path: Path, http: dict[str, object]) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump({**BASE, "http": http}))
    return path


def get(url: str, user: str | None = None, password: str | None = None,
        context: ssl.SSLContext | None = None) -> tuple[int, bytes, dict[str, str]]:
    req = urllib.request.Request(url)
    if user is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


@pytest.mark.parametrize("http,key,fix", [
    ({"host": "0.0.0.0"}, "http.host", "http.expose: true"),
    ({"host": "192.168.1.20", "basic_auth": {"user": "p", "password_hash": HASH}}, "http.host", "http.expose"),
    ({"host": "", "port": 9108}, "http.host", "127.0.0.1"),
    ({"host": "0.0.0.0", "expose": True}, "http.basic_auth", "edge hash-password"),
    ({"expose": True}, "http.basic_auth", "edge hash-password"),
])
def test_exposing_the_endpoint_needs_expose_and_basic_auth(tmp_path, http, key, fix):
    with pytest.raises(CctvkitError, match=f"key '{key}'.*{fix}") as e:
        load_config(write_config(tmp_path, http))
    assert "\n" not in str(e.value) and "edge.yaml" in str(e.value)


def test_a_password_instead_of_a_hash_is_an_error_that_does_not_echo_it(tmp_path):
    path = write_config(tmp_path, {"basic_auth": {"user": "p", "password_hash": "hunter2"}})
    with pytest.raises(CctvkitError, match="http.basic_auth.password_hash.*edge hash-password") as e:
        load_config(path)
    assert "hunter2" not in str(e.value)


def test_loopback_needs_no_opt_in_and_an_exposed_config_loads(tmp_path):
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        assert load_config(write_config(tmp_path, {"host": host})).http.host == host
    cfg = load_config(write_config(tmp_path, {
        "host": "0.0.0.0", "expose": True, "basic_auth": {"user": "prometheus", "password_hash": HASH},
        "tls": {"cert_file": "tls/cert.pem", "key_file": "/etc/k.pem"}}))
    assert cfg.http.basic_auth is not None and cfg.http.basic_auth.user == "prometheus"
    assert cfg.http.tls is not None and cfg.http.tls.cert_file == tmp_path.resolve() / "tls/cert.pem"
    assert cfg.http.tls.key_file == Path("/etc/k.pem")


def test_basic_auth_401_without_or_with_wrong_credentials_200_with_right_ones():
    server = MetricsServer("127.0.0.1", 0, lambda: b"up 1\n", lambda: (True, {}),
                           auth=BasicAuth("prometheus", HASH))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        for creds in ((None, None), ("prometheus", "wrong"), ("root", "s3cret"), ("prometheus", "")):
            code, body, headers = get(url, *creds)
            assert code == 401, creds
            assert headers["WWW-Authenticate"].startswith('Basic realm="cctvkit-edge"')
            assert body == b"unauthorized\n"
            assert "Python" not in headers.get("Server", "")
        assert get(url, "prometheus", "s3cret")[:2] == (200, b"up 1\n")
        assert get(url.replace("/metrics", "/healthz"))[0] == 401  # every path, not only /metrics
        # Not basic, not base64, no colon: each just a 401.
        for header in ("Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()):
            req = urllib.request.Request(url, headers={"Authorization": header})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req, timeout=5)
            assert e.value.code == 401
    finally:
        server.stop()


def test_a_good_check_is_cached_so_a_scrape_does_not_pay_bcrypt_each_time():
    auth = BasicAuth("prometheus", hash_password("s3cret", rounds=12))
    header = "Basic " + base64.b64encode(b"prometheus:s3cret").decode()
    t0 = time.perf_counter()
    assert auth.check(header)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    assert all(auth.check(header) for _ in range(10))
    cached = (time.perf_counter() - t0) / 10
    assert cached < first / 20, (first, cached)
    assert not auth.check("Basic " + base64.b64encode(b"prometheus:s3cret ").decode())  # not a prefix match


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the TLS test makes its certificate with the openssl CLI, which is not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=30)
    return cert, key


def test_tls_scrape_works_and_plain_http_to_the_tls_port_fails(tmp_path, self_signed):
    cert, key = self_signed
    cfg = load_config(write_config(tmp_path, {
        "host": "127.0.0.1", "port": 0, "expose": True, "basic_auth": {"user": "prometheus", "password_hash": HASH},
        "tls": {"cert_file": str(cert), "key_file": str(key)}}))
    server = make_metrics_server(cfg.http, lambda: b"up 1\n", lambda: (True, {}))
    server.start()
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{server.port}/metrics"
        assert get(url, "prometheus", "s3cret", context=trust)[:2] == (200, b"up 1\n")
        assert get(url, context=trust)[0] == 401
        with pytest.raises((OSError, http.client.HTTPException)):
            get(f"http://127.0.0.1:{server.port}/metrics", "prometheus", "s3cret")
        # A client that checks certificates refuses one it was not told to trust.
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(url, "prometheus", "s3cret", context=ssl.create_default_context())
        assert get(url, "prometheus", "s3cret", context=trust)[0] == 200  # the failed ones left it serving
    finally:
        server.stop()


def test_clients_stuck_before_the_tls_handshake_do_not_lock_out_a_scrape(self_signed):
    # The handshake runs on the connection's thread, so one that never sends a ClientHello is just another
    # connection without a whole request: evicted for a newer one, never blocking accept().
    cert, key = self_signed
    server = MetricsServer("127.0.0.1", 0, lambda: b"up 1\n", lambda: (True, {}),
                           tls=server_tls_context(cert, key))
    server.start()
    idle = []
    try:
        for _ in range(3 * MAX_CONNECTIONS):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        trust = ssl.create_default_context(cafile=str(cert))
        t0 = time.monotonic()
        assert get(f"https://127.0.0.1:{server.port}/metrics", context=trust)[:2] == (200, b"up 1\n")
        assert time.monotonic() - t0 < 1.0
        assert server.evicted >= 2 * MAX_CONNECTIONS
    finally:
        for s in idle:
            s.close()
        server.stop()


def test_tls_files_missing_is_a_one_line_error(tmp_path):
    cfg = load_config(write_config(tmp_path, {"tls": {"cert_file": "nope.pem", "key_file": "nope.key"}}))
    with pytest.raises(CctvkitError, match="http.tls.cert_file not found.*PEM"):
        make_metrics_server(cfg.http, lambda: b"", lambda: (True, {}))


def test_edge_hash_password_prints_a_hash_that_verifies():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-m", "edge.cli", "hash-password", "--rounds", "4"], input="s3cret\n",
                       capture_output=True, text=True, env=env, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    printed = r.stdout.strip()
    assert bcrypt.checkpw(b"s3cret", printed.encode()) and not bcrypt.checkpw(b"s3cret\n", printed.encode())
    # What it prints is what the config takes.
    assert BasicAuth("u", printed).check("Basic " + base64.b64encode(b"u:s3cret").decode())
    r = subprocess.run([sys.executable, "-m", "edge.cli", "hash-password"], input="", capture_output=True,
                       text=True, env=env, timeout=60, cwd=ROOT)
    assert r.returncode == 2 and "empty password" in r.stderr
