"""Offline verification of RFC 3161 tokens: what the dev TSA issues verifies, and each
deviation is refused with TIMESTAMP_INVALID naming the failed check (or
TIMESTAMP_UNAVAILABLE when the TSA refused)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import cms, tsp

from sealed_bid.crypto.signer import Signer
from sealed_bid.errors import TimestampInvalid, TimestampUnavailable
from sealed_bid.timestamping.dev_tsa import (
    DEV_TSA_POLICY,
    DevTsa,
    DevTsaFiles,
    load_dev_tsa_signer,
    rejection,
)
from sealed_bid.timestamping.rfc3161 import (
    make_request,
    message_imprint_of,
    split_response,
    verify_response,
    verify_token,
)

from .conftest import DIGEST, BadTsa

NONCE = 0x1234_5678_9ABC_DEF0


def issue(
    signer: Signer,
    *,
    digest: bytes = DIGEST,
    nonce: int = NONCE,
    clock: Callable[[], datetime] | None = None,
    cert_req: bool = True,
) -> bytes:
    """A granted TimeStampResp from a DevTsa signing with ``signer``."""
    tsa = DevTsa(signer, clock=clock or (lambda: datetime.now(UTC)))
    request = tsp.TimeStampReq.load(make_request(digest, nonce))
    if not cert_req:
        request = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": request["message_imprint"].copy(),
                "nonce": nonce,
            }
        )
    response = tsa.respond(request.dump())
    status, token = split_response(response)
    assert status["status"].native == "granted"
    assert token is not None
    return response


def token_of(response: bytes) -> bytes:
    _, token = split_response(response)
    assert token is not None
    return token


def expect_invalid(check: str, call: Callable[[], object]) -> TimestampInvalid:
    with pytest.raises(TimestampInvalid) as caught:
        call()
    assert caught.value.code == "TIMESTAMP_INVALID"
    assert caught.value.context["check"] == check, caught.value.message
    return caught.value


@pytest.fixture(scope="module")
def signer(tsa: DevTsaFiles) -> Signer:
    return load_dev_tsa_signer(tsa)


@pytest.fixture(scope="module")
def response(signer: Signer) -> bytes:
    return issue(signer)


class TestRequest:
    def test_request_fields(self) -> None:
        request = tsp.TimeStampReq.load(make_request(DIGEST, NONCE, "1.2.3.4"))
        assert request["version"].native == "v1"
        assert request["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
        assert request["message_imprint"]["hashed_message"].native == DIGEST
        assert request["nonce"].native == NONCE
        assert request["cert_req"].native is True
        assert request["req_policy"].dotted == "1.2.3.4"
        assert tsp.TimeStampReq.load(make_request(DIGEST, NONCE))["req_policy"].native is None

    @pytest.mark.parametrize(
        ("digest", "nonce", "policy"),
        [(b"short", NONCE, None), (DIGEST, 0, None), (DIGEST, 2**128, None), (DIGEST, 1, "x.y")],
    )
    def test_bad_arguments(self, digest: bytes, nonce: int, policy: str | None) -> None:
        with pytest.raises(ValueError):
            make_request(digest, nonce, policy)


class TestGood:
    def test_verifies_and_reports_the_token(
        self, response: bytes, roots: list[bytes], tsa: DevTsaFiles
    ) -> None:
        token = verify_response(response, DIGEST, NONCE, roots)
        assert token.der == token_of(response)
        assert token.message_imprint == DIGEST
        assert token.policy == DEV_TSA_POLICY
        assert token.tsa_certificate_der == tsa.cert_der()
        assert token.gen_time.tzinfo is not None
        assert token.gen_time.utcoffset() == timedelta(0)
        assert token.serial_number > 0
        again = verify_token(token.der, DIGEST, roots, nonce=NONCE, policy=DEV_TSA_POLICY)
        assert again == token
        assert message_imprint_of(token.der) == DIGEST

    def test_gen_time_is_the_tsa_clock_not_ours(self, signer: Signer, roots: list[bytes]) -> None:
        tsa_time = datetime.now(UTC) - timedelta(days=3, microseconds=250)
        token = verify_response(issue(signer, clock=lambda: tsa_time), DIGEST, NONCE, roots)
        assert token.gen_time == tsa_time

    def test_rsa_tsa_verifies_when_its_root_is_trusted(self, rsa_tsa: DevTsaFiles) -> None:
        response = issue(load_dev_tsa_signer(rsa_tsa))
        token = verify_response(response, DIGEST, NONCE, [rsa_tsa.root_der()])
        assert token.tsa_certificate_der == rsa_tsa.cert_der()

    def test_token_without_certificate_verifies_with_it_given(
        self, signer: Signer, roots: list[bytes], tsa: DevTsaFiles
    ) -> None:
        response = issue(signer, cert_req=False)
        signed_data = cms.ContentInfo.load(token_of(response))["content"]
        assert not signed_data["certificates"].native
        expect_invalid(
            "certificate-missing", lambda: verify_response(response, DIGEST, NONCE, roots)
        )
        token = verify_response(response, DIGEST, NONCE, roots, intermediates_der=[tsa.cert_der()])
        assert token.tsa_certificate_der == tsa.cert_der()


class TestRefused:
    def test_wrong_digest(self, response: bytes, roots: list[bytes]) -> None:
        other = hashlib.sha256(b"another request").digest()
        expect_invalid("imprint", lambda: verify_response(response, other, NONCE, roots))

    def test_wrong_nonce(self, response: bytes, roots: list[bytes]) -> None:
        expect_invalid("nonce", lambda: verify_response(response, DIGEST, NONCE + 1, roots))

    def test_wrong_policy(self, response: bytes, roots: list[bytes]) -> None:
        expect_invalid(
            "policy", lambda: verify_token(token_of(response), DIGEST, roots, policy="1.2.3")
        )

    def test_untrusted_tsa(self, response: bytes, rsa_tsa: DevTsaFiles) -> None:
        expect_invalid(
            "tsa-untrusted",
            lambda: verify_response(response, DIGEST, NONCE, [rsa_tsa.root_der()]),
        )

    def test_tampered_signature(self, response: bytes, roots: list[bytes]) -> None:
        token = token_of(response)
        signature = cms.ContentInfo.load(token)["content"]["signer_infos"][0]["signature"].native
        flipped = bytearray(signature)
        flipped[len(flipped) // 2] ^= 0x01
        tampered = token.replace(signature, bytes(flipped))
        assert tampered != token
        expect_invalid("signature", lambda: verify_token(tampered, DIGEST, roots))

    def test_tampered_tst_info(self, response: bytes, roots: list[bytes]) -> None:
        token = token_of(response)
        tst = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"]
        econtent = bytes(tst)
        serial = tst.parsed["serial_number"].contents
        altered = econtent.replace(serial, serial[:-1] + bytes([serial[-1] ^ 0x01]))
        tampered = token.replace(econtent, altered)
        assert tampered != token
        expect_invalid("message-digest", lambda: verify_token(tampered, DIGEST, roots))

    @pytest.mark.parametrize(
        ("name", "check"),
        [
            ("no-eku", "tsa-eku"),
            ("eku-not-critical", "tsa-eku"),
            ("eku-extra", "tsa-eku"),
            ("eku-other", "tsa-eku"),
            ("key-encipherment", "tsa-key-usage"),
        ],
    )
    def test_certificate_not_for_time_stamping(
        self, bad_tsas: dict[str, BadTsa], roots: list[bytes], name: str, check: str
    ) -> None:
        response = issue(bad_tsas[name].signer)
        expect_invalid(check, lambda: verify_response(response, DIGEST, NONCE, roots))

    def test_tsa_certificate_not_valid_at_gen_time(
        self, signer: Signer, roots: list[bytes], now: datetime
    ) -> None:
        # The dev TSA certificate is valid from now - 30 days to now + 825 days.
        early = issue(signer, clock=lambda: now - timedelta(days=60))
        expect_invalid("tsa-not-yet-valid", lambda: verify_response(early, DIGEST, NONCE, roots))
        late = issue(signer, clock=lambda: now + timedelta(days=900))
        expect_invalid("tsa-expired", lambda: verify_response(late, DIGEST, NONCE, roots))

    def test_garbage(self, roots: list[bytes]) -> None:
        expect_invalid("malformed", lambda: verify_token(b"\x30\x03\x02\x01\x01", DIGEST, roots))
        expect_invalid("malformed", lambda: verify_response(b"not DER", DIGEST, NONCE, roots))
        expect_invalid("malformed", lambda: verify_response(b"\x30\x00", DIGEST, NONCE, roots))

    def test_no_trust_roots_is_a_programming_error(self, response: bytes) -> None:
        with pytest.raises(ValueError, match="trust root"):
            verify_token(token_of(response), DIGEST, [])


class TestStatus:
    def test_rejection_is_unavailable_with_the_tsa_text(self, roots: list[bytes]) -> None:
        reply = rejection("unaccepted_policy", "only policy 1.2.3 here\x07")
        with pytest.raises(TimestampUnavailable) as caught:
            verify_response(reply, DIGEST, NONCE, roots)
        assert caught.value.context["status"] == "rejection"
        assert "unaccepted_policy" in caught.value.message
        assert "only policy 1.2.3 here?" in caught.value.message

    def test_status_text_is_bounded(self, roots: list[bytes]) -> None:
        reply = rejection("system_failure", "x" * 10_000)
        with pytest.raises(TimestampUnavailable) as caught:
            verify_response(reply, DIGEST, NONCE, roots)
        assert len(caught.value.message) < 400

    def test_granted_without_token_is_invalid(self, roots: list[bytes]) -> None:
        status = tsp.PKIStatusInfo({"status": "granted"}).dump()
        reply = bytes([0x30, len(status)]) + status
        expect_invalid("response", lambda: verify_response(reply, DIGEST, NONCE, roots))

    @pytest.mark.parametrize(
        ("request_der", "failure"),
        [
            (b"\x30\x03\x02\x01\x01", "bad_data_format"),
            (
                tsp.TimeStampReq(
                    {
                        "version": "v1",
                        "message_imprint": {
                            "hash_algorithm": {"algorithm": "sha1"},
                            "hashed_message": bytes(20),
                        },
                    }
                ).dump(),
                "bad_alg",
            ),
            (make_request(DIGEST, NONCE, "1.2.3.4"), "unaccepted_policy"),
        ],
    )
    def test_dev_tsa_rejects_bad_requests(
        self, signer: Signer, request_der: bytes, failure: str
    ) -> None:
        status, token = split_response(DevTsa(signer).respond(request_der))
        assert token is None
        assert status["status"].native == "rejection"
        assert failure in status["fail_info"].native
