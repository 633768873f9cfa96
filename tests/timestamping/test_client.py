"""TimestampClient against real HTTP servers on 127.0.0.1: the dev TSA (with a clock that
differs from ours), a closed port, a socket that never answers, and small misbehaving
servers (oversized reply, HTTP errors, wrong content type)."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from sealed_bid.errors import ConfigError, TimestampInvalid, TimestampUnavailable
from sealed_bid.timestamping import TimestampClient
from sealed_bid.timestamping.dev_tsa import (
    DEV_TSA_POLICY,
    DevTsaFiles,
    DevTsaServer,
    load_dev_tsa_signer,
)
from sealed_bid.timestamping.rfc3161 import make_request, split_response

from .conftest import DIGEST


def expect_unavailable(reason: str, call: Callable[[], object]) -> TimestampUnavailable:
    with pytest.raises(TimestampUnavailable) as caught:
        call()
    assert caught.value.code == "TIMESTAMP_UNAVAILABLE"
    assert caught.value.context.get("reason") == reason, caught.value.message
    return caught.value


class _Misbehaving(http.server.BaseHTTPRequestHandler):
    """Answers every POST as its path says: /big, /big-undeclared, /500, /302, /html."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        big = b"\x30" * (200 * 1024)
        if self.path == "/big":
            self._reply(200, "application/timestamp-reply", big)
        elif self.path == "/big-undeclared":
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(big)
            self.close_connection = True
        elif self.path == "/302":
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:1/")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/html":
            self._reply(200, "text/html", b"<html>not a TSA</html>")
        else:
            self._reply(500, "text/plain", b"internal error")

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def misbehaving() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Misbehaving)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket that never accepts: connections complete (backlog), nothing
    is ever answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestRoundTrip:
    def test_stamp_verifies(self, tsa_server: DevTsaServer, roots: list[bytes]) -> None:
        token = TimestampClient(tsa_server.url, roots).stamp(DIGEST)
        assert token.message_imprint == DIGEST
        assert token.policy == DEV_TSA_POLICY

    @pytest.mark.parametrize("skew", [timedelta(hours=-2), timedelta(minutes=37)])
    def test_gen_time_is_the_tsa_clock(
        self, tsa: DevTsaFiles, roots: list[bytes], skew: timedelta
    ) -> None:
        """A service whose clock is ahead learns the TSA's time, not its own."""
        tsa_now = datetime.now(UTC).replace(microsecond=125000) + skew
        with DevTsaServer(load_dev_tsa_signer(tsa), clock=lambda: tsa_now) as server:
            token = TimestampClient(server.url, roots).stamp(DIGEST)
        assert token.gen_time == tsa_now

    def test_requested_policy_is_kept(self, tsa_server: DevTsaServer, roots: list[bytes]) -> None:
        client = TimestampClient(tsa_server.url, roots, policy=DEV_TSA_POLICY)
        assert client.stamp(DIGEST).policy == DEV_TSA_POLICY

    def test_threads_share_one_client(self, tsa_server: DevTsaServer, roots: list[bytes]) -> None:
        client = TimestampClient(tsa_server.url, roots)
        digests = [bytes([i]) * 32 for i in range(16)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            tokens = list(pool.map(client.stamp, digests))
        assert [t.message_imprint for t in tokens] == digests
        assert len({t.serial_number for t in tokens}) == len(tokens)

    def test_untrusted_tsa_is_invalid(self, tsa_server: DevTsaServer, rsa_tsa: DevTsaFiles) -> None:
        client = TimestampClient(tsa_server.url, [rsa_tsa.root_der()])
        with pytest.raises(TimestampInvalid) as caught:
            client.stamp(DIGEST)
        assert caught.value.context["check"] == "tsa-untrusted"


class TestUnavailable:
    def test_rejection_status(self, tsa_server: DevTsaServer, roots: list[bytes]) -> None:
        client = TimestampClient(tsa_server.url, roots, policy="1.2.3.4")
        with pytest.raises(TimestampUnavailable) as caught:
            client.stamp(DIGEST)
        assert caught.value.context["status"] == "rejection"
        assert "unaccepted_policy" in caught.value.message

    def test_server_down(self, closed_port: int, roots: list[bytes]) -> None:
        client = TimestampClient(f"http://127.0.0.1:{closed_port}/", roots)
        expect_unavailable("connection", lambda: client.stamp(DIGEST))

    def test_server_hanging(self, silent_port: int, roots: list[bytes]) -> None:
        client = TimestampClient(f"http://127.0.0.1:{silent_port}/", roots, timeout_seconds=0.5)
        expect_unavailable("timeout", lambda: client.stamp(DIGEST))

    @pytest.mark.parametrize("path", ["/big", "/big-undeclared"])
    def test_oversized_reply(self, misbehaving: str, roots: list[bytes], path: str) -> None:
        client = TimestampClient(misbehaving + path, roots, max_response_bytes=64 * 1024)
        expect_unavailable("too-large", lambda: client.stamp(DIGEST))

    @pytest.mark.parametrize("path", ["/500", "/302"])
    def test_http_error_and_no_redirects(
        self, misbehaving: str, roots: list[bytes], path: str
    ) -> None:
        error = expect_unavailable(
            "http-status", lambda: TimestampClient(misbehaving + path, roots).stamp(DIGEST)
        )
        assert path[1:] in error.message

    def test_wrong_content_type(self, misbehaving: str, roots: list[bytes]) -> None:
        client = TimestampClient(misbehaving + "/html", roots)
        expect_unavailable("content-type", lambda: client.stamp(DIGEST))


class TestConfiguration:
    @pytest.mark.parametrize("url", ["ftp://127.0.0.1/", "file:///etc/passwd", "127.0.0.1:80"])
    def test_only_http_urls(self, url: str, roots: list[bytes]) -> None:
        with pytest.raises(ConfigError):
            TimestampClient(url, roots)

    def test_trust_roots_required(self) -> None:
        with pytest.raises(ConfigError):
            TimestampClient("http://127.0.0.1:1/", [])


class TestDevServerHttp:
    def _post(
        self, server: DevTsaServer, body: bytes, content_type: str, method: str = "POST"
    ) -> tuple[int, str, bytes]:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request(method, "/", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()

    def test_post_only(self, tsa_server: DevTsaServer) -> None:
        status, _, _ = self._post(tsa_server, b"", "application/timestamp-query", "GET")
        assert status == 405

    def test_content_type_and_size(self, tsa_server: DevTsaServer) -> None:
        request = make_request(DIGEST, 7)
        assert self._post(tsa_server, request, "application/octet-stream")[0] == 415
        assert self._post(tsa_server, b"\x30" * 20_000, "application/timestamp-query")[0] == 413

    def test_malformed_request_gets_bad_data_format(self, tsa_server: DevTsaServer) -> None:
        status, content_type, body = self._post(
            tsa_server, b"definitely not DER", "application/timestamp-query"
        )
        assert (status, content_type) == (200, "application/timestamp-reply")
        pki_status, token = split_response(body)
        assert token is None
        assert pki_status["status"].native == "rejection"
        assert pki_status["fail_info"].native == {"bad_data_format"}
