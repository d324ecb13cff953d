"""Camera credentials kept out of everything cctvkit prints: logs, /healthz, STATUS=, config errors.

A camera URL can carry a secret in three places, and every one has been seen on real cameras:
  rtsp://admin:pw@cam/stream                       userinfo (also with an empty host: rtsp://admin:pw@/x)
  http://cam/snap.cgi?user=admin&password=pw       the query string (password, token, key, sig, auth...)
  rtsp://cam:554/user=admin&password=pw&channel=1  key=value pairs in the path (XMEye/"NVR" firmware)

mask_url() works on the string itself rather than through urllib: urlsplit() raises on some malformed
URLs (an unclosed IPv6 bracket, a bad port) and reads others differently from FFmpeg, and a masking step
that raises, or guesses where the host starts differently from the camera library, is a leak. When in
doubt it masks more: a password holding an unencoded '/', '?' or '@' still ends at the last '@' of the
authority, at the cost of hiding a path that has an '@' in it.

RedactingFormatter masks every URL in a finished log line (message, arguments and traceback) as a safety
net behind the callers that mask their own URLs: an exception text from OpenCV or a driver may quote one.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# Key names whose values are secrets, matched anywhere in the key (case-insensitive): `password`,
# `cam_pwd`, `apikey`, `access_token`, `X-Amz-Signature`, `authcode`, `client_secret`, `passphrase`...
SECRET_WORDS = ("pass", "pwd", "secret", "token", "key", "auth", "sig", "cred", "session", "cookie")
_SECRET_KEY = "|".join(SECRET_WORDS)
# key=value where the key holds a secret word; the value runs to the next pair separator (& ; #) so an
# unencoded '/' or '=' in a password is hidden as well.
_PAIR = re.compile(rf"((?:{_SECRET_KEY})[\w.\-]*=)([^&;#\s]+)", re.IGNORECASE)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# A URL inside free text: scheme:// up to whitespace or a quote/bracket that closes the text around it.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>`]+")
# Secret-looking config keys whose values are never echoed, URL or not (http.password, a token...).
_SECRET_NAME = re.compile(rf"(?:{_SECRET_KEY}|pw$)", re.IGNORECASE)


def _mask_pairs(text: str) -> str:
    return _PAIR.sub(lambda m: m.group(1) + MASK, text)


def _mask_userinfo(userinfo: str) -> str:
    # The user name helps to debug a 401 and is kept; a lone userinfo (`https://TOKEN@host`) is a token.
    user, colon, _ = userinfo.partition(":")
    return f"{user}:{MASK}" if colon else MASK


def mask_url(url: str) -> str:
    """`url` with its password, its secret query/path parameters and any token userinfo replaced by ***.

    Never raises, whatever it is given (str() of a non-string is masked the same way)."""
    try:
        text = url if isinstance(url, str) else str(url)
        m = _SCHEME.match(text)
        head, rest = (text[: m.end()], text[m.end():]) if m else ("", text)
        first_at = rest.find("@")
        if first_at >= 0:
            # The authority runs to the first / ? # after the first '@'; its last '@' ends the userinfo.
            tail = re.search(r"[/?#]", rest[first_at + 1:])
            end = first_at + 1 + tail.start() if tail else len(rest)
            at = rest.rfind("@", 0, end)
            head += _mask_userinfo(rest[:at]) + "@"
            rest = rest[at + 1:]
        # Host names hold no '=', so pairs are looked for in all the rest: an '@' in the query cannot
        # make a password after it pass for a host.
        rest = _mask_pairs(rest)
        return head + rest
    except Exception:  # a log line is never worth a leak or a crash: hide it all
        return MASK


def mask_text(text: str) -> str:
    """`text` with every scheme://... URL in it masked (log lines, error messages, /healthz reasons)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)


def shown_value(value: Any, key: str = "") -> str:
    """repr() of a config value for an error message: nothing of a secret-named key (`password`, `token`,
    ...), URLs masked in everything else."""
    if key and _SECRET_NAME.search(key.rsplit(".", 1)[-1]):
        return repr(MASK)
    # What the user wrote (`${CAM_PASSWORD}` for a value taken from the environment: edge/envsubst.py).
    value = getattr(value, "template", value)
    if isinstance(value, str) and _SCHEME.match(value):
        return repr(mask_url(value))  # the whole value is the URL, even with a space in its password
    return mask_text(repr(value))


class RedactingFormatter(logging.Formatter):
    """A Formatter whose output has every URL masked: message, arguments and exception text alike."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(super().format(record))


__all__ = ["MASK", "RedactingFormatter", "mask_text", "mask_url", "shown_value"]
