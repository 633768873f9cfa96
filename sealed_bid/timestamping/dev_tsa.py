"""The DEVELOPMENT time-stamping authority: its key and certificates, an RFC 3161
responder, and an HTTP server for it on 127.0.0.1 (demo, manual tests, test suite).

It owns the dev TSA's files (``make_dev_tsa``) and the making of TimeStampResp/Tokens
(``DevTsa``): TSTInfo with the injected clock's time, signed with any ``Signer`` (CMS
SignedData, ESS signing-certificate-v2, the TSA certificate included when certReq asks).
Its clock is injectable so tests can run a TSA that is behind or ahead of the service.

It must never be used for production time: its keys are written UNENCRYPTED (0600), every
name says "Dev", its policy OID ``DEV_TSA_POLICY`` is a placeholder under a private
enterprise arc, and it keeps no log of what it stamped. The server listens only on the
address it is given (127.0.0.1 by default).

Run ``python -m sealed_bid.timestamping.dev_tsa --dir D --port P``: creates the files in D
if missing, prints the URL first, then serves until killed.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealed_bid.crypto import der
from sealed_bid.crypto.certs import issue_certificate, timestamping_profile
from sealed_bid.crypto.signer import Signer
from sealed_bid.crypto.software_signer import SoftwareSigner
from sealed_bid.devpki import (
    KeyKind,
    KeyPairFiles,
    dev_name,
    load_dev_key,
    new_dev_key,
    self_signed_root,
    write_key_pair,
)
from sealed_bid.errors import ConfigError
from sealed_bid.timestamping.client import QUERY_CONTENT_TYPE, REPLY_CONTENT_TYPE

DEV_TSA_POLICY = "1.3.6.1.4.1.55555.3161.1"
"""A PLACEHOLDER policy OID for the development TSA; not registered, never for production."""
MAX_REQUEST_BYTES = 8 * 1024
"""A TimeStampReq is about 60-100 bytes; anything much larger is not one."""

_MARKER = "DEVELOPMENT-TSA-DO-NOT-USE-IN-PRODUCTION.txt"
_DIGEST_LENGTHS = {"sha256": 32, "sha384": 48, "sha512": 64}
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


# --- Files ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class DevTsaFiles:
    """Where a dev TSA's certificates (PEM) and unencrypted keys (PEM, 0600) are."""

    directory: Path
    root_cert: Path
    """tsa-root.pem: the self-signed "Sealed Bid Dev TSA Root" (what verifiers trust)."""
    root_key: Path
    cert: Path
    """tsa.pem: the TSA's signing certificate (id-kp-timeStamping, critical)."""
    key: Path

    def root_der(self) -> bytes:
        return _read_cert_der(self.root_cert)

    def cert_der(self) -> bytes:
        return _read_cert_der(self.cert)


def dev_tsa_layout(directory: Path) -> DevTsaFiles:
    """The paths of a dev TSA in ``directory`` (nothing is read or written)."""
    return DevTsaFiles(
        directory=directory,
        root_cert=directory / "tsa-root.pem",
        root_key=directory / "tsa-root.key",
        cert=directory / "tsa.pem",
        key=directory / "tsa.key",
    )


def make_dev_tsa(directory: Path, now: datetime, *, key_kind: KeyKind = "ec") -> DevTsaFiles:
    """Create (or overwrite) a dev TSA root and TSA signing certificate in ``directory``.

    The root is valid 1100 days back and 10 years on; the TSA certificate 30 days back and
    825 days on, so tests may run the TSA's clock days behind ``now``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    files = dev_tsa_layout(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / _MARKER).write_text(
        "This directory holds a DEVELOPMENT time-stamping authority made by\n"
        "sealed_bid.timestamping.dev_tsa. Its private keys are unencrypted and its policy\n"
        "OID is a placeholder. Never trust it outside development.\n",
        encoding="utf-8",
    )
    root_key = new_dev_key(key_kind)
    root = self_signed_root(root_key, dev_name("Sealed Bid Dev TSA Root"), now)
    write_key_pair(KeyPairFiles(files.root_cert, files.root_key), root_key, root)
    key = new_dev_key(key_kind)
    cert = issue_certificate(
        SoftwareSigner(root_key, root),
        dev_name("Sealed Bid Dev TSA", "time-stamping"),
        key.public_key(),
        now - timedelta(days=30),
        now + timedelta(days=825),
        None,
        timestamping_profile(),
    )
    write_key_pair(KeyPairFiles(files.cert, files.key), key, cert)
    return files


def load_dev_tsa(directory: Path) -> DevTsaFiles:
    """The files of a dev TSA made earlier by ``make_dev_tsa``; checks they exist."""
    files = dev_tsa_layout(directory)
    missing = [
        str(p) for p in (files.root_cert, files.root_key, files.cert, files.key) if not p.is_file()
    ]
    if missing:
        raise ConfigError(
            f"no complete development TSA in {directory}; create it with make_dev_tsa",
            missing=missing,
        )
    return files


def load_dev_tsa_signer(files: DevTsaFiles) -> SoftwareSigner:
    """A ``Signer`` over the dev TSA's key and certificate."""
    return SoftwareSigner(load_dev_key(files.key), files.cert_der())


# --- The responder -------------------------------------------------------------------------
class DevTsa:
    """Answers DER TimeStampReqs with DER TimeStampResps (never raises for bad input:
    RFC 3161 answers those with status rejection). Thread-safe (no mutable state)."""

    def __init__(
        self,
        signer: Signer,
        *,
        clock: Clock = _utc_now,
        policy: str = DEV_TSA_POLICY,
        extra_certs_der: Sequence[bytes] = (),
    ) -> None:
        self.signer = signer
        self.clock = clock
        self.policy = policy
        self._certificate = asn1_x509.Certificate.load(signer.certificate_der)
        self._extra = tuple(asn1_x509.Certificate.load(d) for d in extra_certs_der)
        core.ObjectIdentifier(policy).dump()  # a malformed OID fails here

    def respond(self, request_der: bytes) -> bytes:
        try:
            request = tsp.TimeStampReq.load(request_der, strict=True)
            request.native  # noqa: B018  (force the lazy parse here)
        except (ValueError, TypeError, KeyError):
            return rejection("bad_data_format", "the request is not a DER TimeStampReq")
        if request["version"].native != "v1":
            return rejection("bad_data_format", "only TimeStampReq version 1 is supported")
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        if _DIGEST_LENGTHS.get(algorithm) != len(imprint["hashed_message"].native):
            return rejection("bad_alg", f"unsupported or malformed imprint ({algorithm})")
        requested = request["req_policy"].native
        if requested is not None and request["req_policy"].dotted != self.policy:
            return rejection("unaccepted_policy", f"this TSA only issues under {self.policy}")
        if request["extensions"].native:
            return rejection("unaccepted_extensions", "this TSA supports no request extensions")
        gen_time = self.clock()
        if gen_time.tzinfo is None:
            return rejection("time_not_available", "the TSA's clock is not timezone-aware")
        token = self.make_token(request, gen_time.astimezone(UTC))
        status = tsp.PKIStatusInfo({"status": "granted"})
        return der.encode(der.TAG_SEQUENCE, status.dump() + token)

    def make_token(self, request: tsp.TimeStampReq, gen_time: datetime) -> bytes:
        """A DER TimeStampToken answering ``request`` with time ``gen_time``."""
        tst_fields: dict[str, object] = {
            "version": "v1",
            "policy": self.policy,
            "message_imprint": request["message_imprint"].copy(),
            "serial_number": x509.random_serial_number(),
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "tsa": asn1_x509.GeneralName(
                name="directory_name", value=self._certificate.subject.copy()
            ),
        }
        if request["nonce"].native is not None:
            tst_fields["nonce"] = request["nonce"].native
        econtent = tsp.TSTInfo(tst_fields).dump()
        cert_der = self._certificate.dump()
        ess = tsp.ESSCertIDv2(
            {
                # hashAlgorithm DEFAULT sha256 is left out, as DER requires.
                "cert_hash": hashlib.sha256(cert_der).digest(),
                "issuer_serial": {
                    "issuer": [
                        asn1_x509.GeneralName(
                            name="directory_name", value=self._certificate.issuer.copy()
                        )
                    ],
                    "serial_number": self._certificate.serial_number,
                },
            }
        )
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
                cms.CMSAttribute(
                    {"type": "message_digest", "values": [hashlib.sha256(econtent).digest()]}
                ),
                cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{"certs": [ess]}]}),
            ]
        )
        signature = self.signer.sign(signed_attrs.dump())
        digest_algorithm = algos.DigestAlgorithm({"algorithm": "sha256"})
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    name="issuer_and_serial_number",
                    value={
                        "issuer": self._certificate.issuer.copy(),
                        "serial_number": self._certificate.serial_number,
                    },
                ),
                "digest_algorithm": digest_algorithm,
                "signed_attrs": signed_attrs,
                "signature_algorithm": _signature_algorithm(self.signer),
                "signature": signature,
            }
        )
        certificates = (
            [self._certificate.copy(), *(c.copy() for c in self._extra)]
            if request["cert_req"].native
            else []
        )
        signed_data: dict[str, object] = {
            # v3: the eContentType is not id-data (RFC 5652 5.1).
            "version": "v3",
            "digest_algorithms": [digest_algorithm],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(econtent),
            },
            "signer_infos": [signer_info],
        }
        if certificates:
            signed_data["certificates"] = certificates
        token: bytes = cms.ContentInfo(
            {"content_type": "signed_data", "content": cms.SignedData(signed_data)}
        ).dump()
        return token


def rejection(failure: str, text: str) -> bytes:
    """A DER TimeStampResp with status rejection, one PKIFailureInfo bit and a text."""
    status = tsp.PKIStatusInfo(
        {"status": "rejection", "status_string": [text], "fail_info": {failure}}
    )
    return der.encode(der.TAG_SEQUENCE, status.dump())


def _signature_algorithm(signer: Signer) -> algos.SignedDigestAlgorithm:
    if signer.signature_algorithm == "sha256_rsa":
        # rsaEncryption with NULL parameters, as OpenSSL writes it for PKCS#1 v1.5.
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"})
    return algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"})


# --- The HTTP server -----------------------------------------------------------------------
class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], tsa: DevTsa, max_request: int, verbose: bool
    ) -> None:
        super().__init__(address, _Handler)
        self.tsa = tsa
        self.max_request = max_request
        self.verbose = verbose


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    timeout = 10  # a client that stalls mid-request does not hold a thread for ever

    def do_POST(self) -> None:
        declared = self.headers.get("Content-Length", "")
        if not declared.isdigit():
            self._plain(411, "Content-Length required")
            return
        if int(declared) > self.server.max_request:
            self._plain(413, "a TimeStampReq is not that large")
            return
        media_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if media_type != QUERY_CONTENT_TYPE:
            self._plain(415, f"send {QUERY_CONTENT_TYPE}")
            return
        body = self.rfile.read(int(declared))
        try:
            reply = self.server.tsa.respond(body)
        except Exception as exc:  # the signer failed: answer as RFC 3161 says, then log
            reply = rejection("system_failure", "the TSA could not sign")
            self.log_error("signing failed: %s", type(exc).__name__)
        self.send_response(200)
        self.send_header("Content-Type", REPLY_CONTENT_TYPE)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def do_GET(self) -> None:
        self._plain(405, "RFC 3161 over HTTP: POST a TimeStampReq", allow="POST")

    def _plain(self, status: int, text: str, allow: str | None = None) -> None:
        body = (text + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if allow is not None:
            self.send_header("Allow", allow)
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class DevTsaServer:
    """The dev TSA over HTTP (RFC 3161 3.4) in a daemon thread: ``start()``/``stop()`` or
    ``with``. ``port`` 0 picks a free one; ``url`` is known after ``start()``."""

    def __init__(
        self,
        signer: Signer,
        *,
        clock: Clock = _utc_now,
        policy: str = DEV_TSA_POLICY,
        host: str = "127.0.0.1",
        port: int = 0,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        extra_certs_der: Sequence[bytes] = (),
        verbose: bool = False,
    ) -> None:
        self.tsa = DevTsa(signer, clock=clock, policy=policy, extra_certs_der=extra_certs_der)
        self._address = (host, port)
        self._max_request = max_request_bytes
        self._verbose = verbose
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the dev TSA server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> DevTsaServer:
        if self._server is not None:
            raise RuntimeError("the dev TSA server is already running")
        server = _Server(self._address, self.tsa, self._max_request, self._verbose)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.name = f"dev-tsa-{server.server_address[1]}"
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> DevTsaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Helpers -------------------------------------------------------------------------------
def _read_cert_der(path: Path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


# --- Command line --------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sealed_bid.timestamping.dev_tsa",
        description="Serve the DEVELOPMENT time-stamping authority (RFC 3161 over HTTP).",
    )
    parser.add_argument("--dir", type=Path, required=True, help="the dev TSA's files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--policy", default=DEV_TSA_POLICY)
    args = parser.parse_args(argv)
    directory: Path = args.dir
    if dev_tsa_layout(directory).key.is_file():
        files = load_dev_tsa(directory)
    else:
        files = make_dev_tsa(directory, datetime.now(UTC))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = DevTsaServer(
        load_dev_tsa_signer(files),
        policy=args.policy,
        host=args.host,
        port=args.port,
        verbose=True,
    )
    with server:
        print(server.url, flush=True)
        print(f"trust root: {files.root_cert}", file=sys.stderr, flush=True)
        while not stop.wait(1.0):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
