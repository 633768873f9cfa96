"""Interoperability with the openssl CLI, both ways: ``openssl ts -verify`` accepts the
dev TSA's replies and tokens (and to requests openssl made), and our verifier accepts
tokens from an openssl TSA (``openssl ts -reply``) with ESSCertID v1 and v2."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms

from sealed_bid.errors import TimestampInvalid
from sealed_bid.timestamping import TimestampClient, make_request, verify_response
from sealed_bid.timestamping.dev_tsa import DEV_TSA_POLICY, DevTsaFiles, DevTsaServer
from sealed_bid.timestamping.rfc3161 import split_response

from .conftest import DIGEST

pytestmark = pytest.mark.openssl

NONCE = 0x0DDC0FFEE


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", *(str(a) for a in args)], capture_output=True, text=True, check=False
    )


def post(server: DevTsaServer, body: bytes) -> bytes:
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(
            "POST", "/", body=body, headers={"Content-Type": "application/timestamp-query"}
        )
        response = connection.getresponse()
        assert response.status == 200
        return response.read()
    finally:
        connection.close()


def ts_verify(tsa: DevTsaFiles, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return openssl("ts", "-verify", *args, "-CAfile", tsa.root_cert, "-untrusted", tsa.cert)


class TestOpensslVerifiesOurs:
    def test_reply_verifies(
        self, tsa_server: DevTsaServer, tsa: DevTsaFiles, tmp_path: Path
    ) -> None:
        reply = tmp_path / "reply.der"
        reply.write_bytes(post(tsa_server, make_request(DIGEST, NONCE)))
        result = ts_verify(tsa, "-digest", DIGEST.hex(), "-in", reply)
        assert result.returncode == 0, result.stderr
        assert "Verification: OK" in result.stdout
        text = openssl("ts", "-reply", "-in", reply, "-text")
        assert text.returncode == 0, text.stderr
        assert f"Policy OID: {DEV_TSA_POLICY}" in text.stdout
        assert f"Nonce: 0x{NONCE:X}" in text.stdout

    def test_token_verifies_and_wrong_digest_does_not(
        self, tsa_server: DevTsaServer, tsa: DevTsaFiles, roots: list[bytes], tmp_path: Path
    ) -> None:
        token = tmp_path / "token.der"
        token.write_bytes(TimestampClient(tsa_server.url, roots).stamp(DIGEST).der)
        good = ts_verify(tsa, "-token_in", "-digest", DIGEST.hex(), "-in", token)
        assert good.returncode == 0, good.stderr
        bad = ts_verify(tsa, "-token_in", "-digest", "00" * 32, "-in", token)
        assert bad.returncode != 0

    def test_openssl_request_gets_a_verifiable_reply(
        self, tsa_server: DevTsaServer, tsa: DevTsaFiles, tmp_path: Path
    ) -> None:
        data = tmp_path / "data.bin"
        data.write_bytes(b"an opening request, as bytes")
        query = tmp_path / "query.tsq"
        made = openssl("ts", "-query", "-data", data, "-sha256", "-cert", "-out", query)
        assert made.returncode == 0, made.stderr
        reply = tmp_path / "reply.tsr"
        reply.write_bytes(post(tsa_server, query.read_bytes()))
        result = ts_verify(tsa, "-queryfile", query, "-in", reply)
        assert result.returncode == 0, result.stderr

    def test_openssl_reads_our_request(self, tmp_path: Path) -> None:
        request = tmp_path / "ours.tsq"
        request.write_bytes(make_request(DIGEST, NONCE, "1.2.3.4"))
        text = openssl("ts", "-query", "-in", request, "-text")
        assert text.returncode == 0, text.stderr
        assert "Policy OID: 1.2.3.4" in text.stdout
        assert "Certificate required: yes" in text.stdout
        assert f"Nonce: 0x{NONCE:X}" in text.stdout


_TSA_CONFIG = """\
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = {dir}
serial = $dir/serial
signer_cert = {cert}
signer_key = {key}
signer_digest = {signer_digest}
default_policy = {policy}
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess}
"""


class TestWeVerifyOpenssl:
    @pytest.mark.parametrize(
        ("ess", "signer_digest"), [("sha1", "sha256"), ("sha256", "sha256"), ("sha256", "sha384")]
    )
    def test_openssl_tsa_token_verifies(
        self,
        tsa: DevTsaFiles,
        roots: list[bytes],
        tmp_path: Path,
        ess: str,
        signer_digest: str,
    ) -> None:
        (tmp_path / "serial").write_text("01\n")
        config = tmp_path / "ts.cnf"
        config.write_text(
            _TSA_CONFIG.format(
                dir=tmp_path,
                cert=tsa.cert,
                key=tsa.key,
                policy="1.2.3.4.5",
                ess=ess,
                signer_digest=signer_digest,
            )
        )
        query = tmp_path / "query.tsq"
        query.write_bytes(make_request(DIGEST, NONCE))
        reply = tmp_path / "reply.tsr"
        made = openssl("ts", "-reply", "-config", config, "-queryfile", query, "-out", reply)
        assert made.returncode == 0, made.stderr
        token = verify_response(reply.read_bytes(), DIGEST, NONCE, roots)
        assert token.policy == "1.2.3.4.5"
        assert token.serial_number == 2  # openssl increments the serial file's 01 first
        signer_info = cms.ContentInfo.load(token.der)["content"]["signer_infos"][0]
        types = {attribute["type"].native for attribute in signer_info["signed_attrs"]}
        expected = "signing_certificate" if ess == "sha1" else "signing_certificate_v2"
        assert expected in types
        assert token.tsa_certificate_der == tsa.cert_der()
        with pytest.raises(TimestampInvalid):
            verify_response(reply.read_bytes(), DIGEST, NONCE + 1, roots)
        _, raw = split_response(reply.read_bytes())
        assert raw == token.der
