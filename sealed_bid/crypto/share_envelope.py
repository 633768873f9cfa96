"""A PIN share sealed to one opening officer's certificate, as plain CMS.

Owns the choice of format and the officer-certificate checks: DER CMS EnvelopedData,
AES-256-CBC, one KeyTransRecipientInfo (issuerAndSerialNumber) with RSAES-OAEP
SHA-256/MGF1-SHA-256, so an officer without our SDK opens it with
``openssl cms -decrypt -inform DER -inkey officer.key -recip officer.pem``. Integrity of a
share does not rest on this envelope (CBC has none) but on the commitment the service
stored at creation. The CMS itself is ``envelope.py``'s, reused over in-memory streams.

Officer keys are software keys on the officer's own machine, so sealing uses their public
key directly and never the token. Only RSA officer certificates that allow keyEncipherment
are accepted; EC officers (CMS key agreement) are refused, not implemented.

It must never put a share or any decrypted byte in a message or a log line, and never write
plaintext to disk: opening parses the (public) envelope from a temporary file, because the
envelope walker reads files, and decrypts into memory.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from sealed_bid.crypto.envelope import decrypt_envelope, inspect_envelope, seal_envelope
from sealed_bid.crypto.software_signer import SoftwareKeyTransport
from sealed_bid.errors import InvalidTender, SealedBidError, ShareInvalid

SHARE_OAEP_HASH = "sha256"
MIN_OFFICER_RSA_BITS = 2048
MAX_SHARE_ENVELOPE_BYTES = 64 * 1024
"""A sealed share is about 1 KiB (one RSA block and a few hundred bytes of content)."""
MAX_SHARE_PAYLOAD_BYTES = 16 * 1024


def check_officer_certificate(officer_certificate_der: bytes) -> rsa.RSAPublicKey:
    """The officer's RSA public key, if the certificate may receive a share: an RSA key of
    at least 2048 bits and a keyUsage extension that allows keyEncipherment. Raises
    ``InvalidTender`` otherwise."""
    try:
        certificate = x509.load_der_x509_certificate(officer_certificate_der)
    except ValueError:
        raise InvalidTender(
            "the officer certificate is not a DER X.509 certificate",
            field="officer_certificates",
        ) from None
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise InvalidTender(
            "officer certificates must carry an RSA key for share encryption",
            field="officer_certificates",
        )
    if public_key.key_size < MIN_OFFICER_RSA_BITS:
        raise InvalidTender(
            f"officer RSA keys must have at least {MIN_OFFICER_RSA_BITS} bits",
            field="officer_certificates",
        )
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.key_encipherment:
        raise InvalidTender(
            "the officer certificate does not allow keyEncipherment (keyUsage)",
            field="officer_certificates",
        )
    return public_key


def seal_share(payload: bytes, officer_certificate_der: bytes) -> bytes:
    """DER CMS EnvelopedData of ``payload`` (a serialized share) that only the holder of
    the officer certificate's private key can open. Raises ``InvalidTender`` if the
    certificate cannot receive a share."""
    if len(payload) > MAX_SHARE_PAYLOAD_BYTES:
        raise ValueError(f"a share payload is at most {MAX_SHARE_PAYLOAD_BYTES} bytes")
    check_officer_certificate(officer_certificate_der)
    sealed = io.BytesIO()
    seal_envelope(
        io.BytesIO(payload),
        sealed,
        [officer_certificate_der],
        oaep_hash=SHARE_OAEP_HASH,
        content_algorithm="aes256_cbc",
    )
    return sealed.getvalue()


def _open(path: Path, key_transport: SoftwareKeyTransport) -> bytes:
    info = inspect_envelope(path)
    if info.content_type != "envelopedData":
        raise ShareInvalid("a sealed share is CMS EnvelopedData")
    candidates = [r for r in info.recipients if r.key_encryption == "rsaes_oaep"]
    if not candidates:
        raise ShareInvalid("the sealed share has no RSAES-OAEP recipient")
    for recipient in candidates:
        plaintext = io.BytesIO()
        try:
            decrypt_envelope(path, info, recipient, key_transport, plaintext)
        except SealedBidError:
            continue
        return plaintext.getvalue()
    raise ShareInvalid("the sealed share does not open with this key (sealed to someone else?)")


def open_share(envelope_der: bytes, officer_private_key: rsa.RSAPrivateKey) -> bytes:
    """The payload of a sealed share, decrypted with the officer's own key, in memory.
    Raises ``ShareInvalid`` (never echoing contents) if it is not a sealed share or does
    not open with this key."""
    if len(envelope_der) > MAX_SHARE_ENVELOPE_BYTES:
        raise ShareInvalid("the sealed share is too large")
    key_transport = SoftwareKeyTransport(officer_private_key)
    with tempfile.TemporaryDirectory(prefix="sealed-share-") as directory:
        path = Path(directory) / "share.der"
        path.write_bytes(envelope_der)
        try:
            return _open(path, key_transport)
        except ShareInvalid:
            raise
        except SealedBidError as exc:
            raise ShareInvalid(
                f"the sealed share is not a valid CMS envelope ({exc.code})"
            ) from None
