"""Retries the clients really made land in the request row's ``retries`` column.

A tiny local HTTP server answers the first GET of every key with 503 SlowDown and
the next with the object, so each read needs exactly one retry.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dnnbench.config.loading import validate
from dnnbench.recording.requests import RecorderSpec, flush_current, read_rows
from dnnbench.storage import create_storage

SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
            b"<Message>Please reduce your request rate.</Message></Error>")


class FlakyS3(BaseHTTPRequestHandler):
    seen: set[str] = set()
    lock = threading.Lock()

    def do_GET(self):  # noqa: N802 - http.server's naming
        with self.lock:
            first = self.path not in self.seen
            self.seen.add(self.path)
        body, status, ctype = (SLOWDOWN, 503, "application/xml") if first else (b"x" * 100, 200,
                                                                                   "application/octet-stream")
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def flaky_endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("client", ["boto3", "minio", "s3fs"])
def test_retries_are_recorded(client, flaky_endpoint, tmp_path):
    spec = RecorderSpec(str(tmp_path))
    cfg = validate({"storage": {"client": client, "preset": "minio", "s3": {
        "bucket": "flaky", "endpoint_url": flaky_endpoint, "access_key": "AK", "secret_key": "SK",
        "max_attempts": 3, "retry_mode": "standard"}}})
    st = create_storage(cfg.storage, recorder=spec)
    data, _ = st.get(f"{client}/a.bin")
    assert data == b"x" * 100
    n, _ = st.get_into(f"{client}/b.bin", memoryview(bytearray(100)))
    assert n == 100
    flush_current()
    rows = read_rows(tmp_path)
    assert [r["retries"] for r in rows if r["op"] == "get"] == [1, 1]
