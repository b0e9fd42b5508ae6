"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def moto_endpoint():
    """URL of moto's S3 server, in this process (in memory, no signatures), one per test module."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    yield f"http://127.0.0.1:{port}"
    server.stop()
