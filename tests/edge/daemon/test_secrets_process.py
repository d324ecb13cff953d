"""Issue 14 row 2 through the real `edge run` process: a camera password given in the stream URL (as
userinfo and in the query string) never shows in the daemon's log, its /healthz body or a config error,
and `${NAME}` in edge.yaml takes it from the environment instead (edge/envsubst.py, edge/redact.py).

The camera is a real MJPEG-over-HTTP server on 127.0.0.1 that demands HTTP basic auth, so a run that gets
frames proves the password reached OpenCV's FFmpeg unmasked while everything printed had it masked."""

from __future__ import annotations

import json
import time

from daemon_helpers import failed_start, http_get, metric, start_ready, stream_config, wait_for
from sources_media import MjpegServer

SECRET = "S3cretPw"  # distinctive: it cannot turn up in a log line by chance
USER = "admin"


def frames_processed(port: int) -> float:
    return metric(port, "cctvkit_frames_processed") or 0.0


def test_a_password_in_the_url_stays_out_of_the_log_and_healthz(tmp_path, notify):
    server = MjpegServer(fps=20, auth=(USER, SECRET)).start()
    url = f"http://{USER}:{SECRET}@127.0.0.1:{server.port}/video.mjpg?user={USER}&password={SECRET}"
    d, port = start_ready(stream_config(tmp_path, url), notify)
    try:
        # The credentials reached the camera: frames flow and /healthz is happy.
        assert wait_for(lambda: frames_processed(port) >= 3, 10), d.log
        code, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200, body
        assert SECRET not in body

        server.kill()  # the camera goes away: /healthz now quotes the source's last error, URL and all
        assert wait_for(lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 503, 10), d.log
        time.sleep(0.5)  # a few failed re-opens: their errors quote the URL too
        code, body = http_get(f"http://127.0.0.1:{port}/healthz")
        reason = json.loads(body)["reason"]
        assert code == 503 and "no frame from the camera" in reason, body
        assert f"http://{USER}:***@127.0.0.1:{server.port}/video.mjpg?user={USER}&password=***" in reason, reason
        assert SECRET not in body

        code, _ = d.terminate(timeout=5)
        assert code == 0, d.log
    finally:
        d.kill()
        server.kill()
    log = d.log
    # Not vacuous: the log did name the stream and its failures, every time masked.
    assert "password=***" in log and f"{USER}:***@" in log, log
    assert "camera disconnected" in log, log
    assert SECRET not in log, log


def test_a_config_error_does_not_echo_the_password(tmp_path, notify):
    # An empty host makes the URL itself invalid: the error must quote it, masked.
    cfg = stream_config(tmp_path, f"rtsp://{USER}:{SECRET}@/x?password={SECRET}")
    code, errors, log = failed_start(cfg, notify)
    assert code == 2 and len(errors) == 1, log
    assert "'url' = 'rtsp://admin:***@/x?password=***'" in errors[0], errors[0]
    assert SECRET not in log
    assert notify.wait_for("READY=1", timeout=0.3) is None


def test_env_reference_supplies_the_camera_password(tmp_path, notify):
    server = MjpegServer(fps=20, auth=(USER, SECRET)).start()
    url = f"http://{USER}:${{CAM_PASSWORD}}@127.0.0.1:{server.port}/video.mjpg"
    d, port = start_ready(stream_config(tmp_path, url), notify, env={"CAM_PASSWORD": SECRET})
    try:
        # Only the expanded password gets past the camera's basic auth (a literal ${CAM_PASSWORD} is a 401).
        assert wait_for(lambda: frames_processed(port) >= 3, 10), d.log
        assert http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200
        code, _ = d.terminate(timeout=5)
        assert code == 0, d.log
    finally:
        d.kill()
        server.kill()
    assert SECRET not in d.log, d.log


def test_an_unset_variable_is_a_one_line_error_naming_key_and_variable(tmp_path, notify, monkeypatch):
    monkeypatch.delenv("CAM_PASSWORD", raising=False)  # the daemon inherits this environment
    cfg = stream_config(tmp_path, "http://admin:${CAM_PASSWORD}@127.0.0.1:9/video.mjpg")
    code, errors, log = failed_start(cfg, notify)
    assert code == 2 and len(errors) == 1, log
    assert "edge.yaml: key 'source.url' uses ${CAM_PASSWORD}" in errors[0], errors[0]
    assert "CAM_PASSWORD is not set" in errors[0] and "/etc/cctvkit/edge.env" in errors[0], errors[0]
    assert notify.wait_for("READY=1", timeout=0.3) is None
