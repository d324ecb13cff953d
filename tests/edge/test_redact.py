"""Issue 14 row 2: camera URLs are masked wherever they are printed (edge/redact.py). The real daemon's
logs, /healthz and config errors are checked in tests/edge/daemon/test_secrets_process.py."""

from __future__ import annotations

import io
import logging
import random
import string

import pytest

from edge.redact import RedactingFormatter, mask_text, mask_url, shown_value

SECRET = "Hunter2x"


@pytest.mark.parametrize("url,masked", [
    ("rtsp://admin:Hunter2x@192.168.1.10:554/stream1", "rtsp://admin:***@192.168.1.10:554/stream1"),
    ("rtsp://admin:Hunter2x@/x", "rtsp://admin:***@/x"),  # empty host: urllib's hostname is None
    ("rtsp://admin:Hun@ter2x@cam/x", "rtsp://admin:***@cam/x"),  # unencoded '@' in the password
    ("rtsp://admin:Hun/ter2x@cam/x", "rtsp://admin:***@cam/x"),  # unencoded '/'
    ("rtsp://admin:Hun?ter2x@cam/x", "rtsp://admin:***@cam/x"),  # unencoded '?'
    ("https://Hunter2x@api.cam/x", "https://***@api.cam/x"),  # a lone userinfo is a token
    ("http://cam/snap.cgi?user=admin&password=Hunter2x&chn=1", "http://cam/snap.cgi?user=admin&password=***&chn=1"),
    ("http://cam/x?pwd=Hunter2x;pass=Hunter2x", "http://cam/x?pwd=***;pass=***"),
    ("http://cam/x?token=Hunter2x#t", "http://cam/x?token=***#t"),
    ("http://cam/x#access_token=Hunter2x", "http://cam/x#access_token=***"),
    ("http://cam/x?apikey=Hunter2x&key=Hunter2x&auth=Hunter2x", "http://cam/x?apikey=***&key=***&auth=***"),
    ("https://s3/x?X-Amz-Signature=Hunter2x&sig=Hunter2x", "https://s3/x?X-Amz-Signature=***&sig=***"),
    ("http://cam/x?client_secret=Hun/ter=2x&a=1", "http://cam/x?client_secret=***&a=1"),
    ("http://cam/x?email=me@x.org&pwd=Hunter2x", "http://***@x.org&pwd=***"),  # in doubt: more hidden
    ("rtsp://cam:554/user=admin&password=Hunter2x&channel=1&stream=0.sdp",
     "rtsp://cam:554/user=admin&password=***&channel=1&stream=0.sdp"),  # XMEye-style path parameters
    ("rtsp://cam/user=admin_password=Hunter2x_channel=1", "rtsp://cam/user=admin_password=***"),
    ("rtsp://cam:554/live?user=admin", "rtsp://cam:554/live?user=admin"),  # nothing secret: unchanged
    ("http://[::1]:8080/x?password=", "http://[::1]:8080/x?password="),  # no value: nothing to hide
    ("admin:Hunter2x@cam/x", "admin:***@cam/x"),  # no scheme at all
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked
    assert SECRET not in mask_url(url)


def test_mask_url_never_raises_and_never_returns_a_secret_it_was_given():
    rng = random.Random(14)
    alphabet = string.ascii_letters + string.digits + ":/@?#&;=[]%.-_ \t\n{}$"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert isinstance(mask_url(text), str)
        url = f"rtsp://u:{SECRET}@{text}" if rng.random() < 0.5 else f"http://{text}?password={SECRET}"
        assert SECRET not in mask_url(url), url
    for odd in (None, 42, b"rtsp://a:Hunter2x@h", "http://[::1", "rtsp://u:p@h:99999999/x", "://@", "@@@"):
        assert SECRET not in mask_url(odd)  # type: ignore[arg-type]


def test_mask_text_finds_the_urls_in_a_sentence():
    line = "camera open_failed: cannot open rtsp://admin:Hunter2x@cam/x?token=Hunter2x (refused); retrying"
    assert mask_text(line) == "camera open_failed: cannot open rtsp://admin:***@cam/x?token=*** (refused); retrying"
    assert mask_text("nothing to hide: password=Hunter2x") == "nothing to hide: password=Hunter2x"  # no URL


def test_shown_value_for_config_errors():
    assert shown_value("rtsp://admin:my Hunter2x@/x") == "'rtsp://admin:***@/x'"  # a space in a password
    assert shown_value(SECRET, "http.password") == "'***'"  # secret-named keys: never echoed
    assert shown_value(SECRET, "auth.token") == "'***'"
    assert shown_value(-1, "records.rotate_mb") == "-1"
    assert shown_value("many", "model.threads") == "'many'"


def test_the_log_formatter_masks_message_arguments_and_tracebacks():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(RedactingFormatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("opening %s", "rtsp://admin:Hunter2x@cam/x")
        logger.warning("http://cam/x?password=Hunter2x failed")
        try:
            raise OSError("cannot reach http://cam/x?sig=Hunter2x")
        except OSError:
            logger.exception("camera")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert SECRET not in text
    assert "rtsp://admin:***@cam/x" in text and "password=***" in text and "OSError: cannot reach" in text
