"""The two-CA test PKI (two-ca.yml) served over HTTP on 127.0.0.1, as session fixtures.

* ``PkiServer``: certomancer's animator (CRLs, OCSP, certificates) run by wsgiref in a
  thread on an ephemeral port. It counts the requests it answers, by path, so a test can
  prove a cache hit, and its clock can be moved (the only thing a test controls
  directly): the animator then issues CRLs and OCSP responses as of that time.
* ``Blackhole``: a TCP server that accepts connections, reads nothing and never answers
  (a hanging CRL server). It counts connections, so a test can prove a circuit breaker
  stopped trying.
* ``TwoCaPki``: the certificates by "<arch>/<label>" and ready-made trust stores.

A test module declares the fixture with ``shared_two_ca_pki`` (tests/ca_bridge/conftest.py
belongs to the dev-PKI fixtures), and every module gets the same running PKI::

    @pytest.fixture(scope="session")
    def two_ca_pki(tmp_path_factory: pytest.TempPathFactory) -> TwoCaPki:
        return shared_two_ca_pki(tmp_path_factory)
"""

from __future__ import annotations

import atexit
import collections
import socket
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from asn1crypto import x509 as asn1_x509
from certomancer.integrations.animator import Animator, AnimatorArchStore
from certomancer.registry import ArchLabel, CertLabel, CertomancerConfig, ServiceLabel
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ca_bridge.trust_store import CaMaterial, TrustStore

CONFIG = Path(__file__).with_name("two-ca.yml")

CA_A = "ca-a"
CA_B = "ca-b"
TENDER_SIGNING_POLICY = "1.3.6.1.4.1.55555.1.1"
PERMITTED_ORGANISATION = "Permitted Works Ltd"

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ThreadingWsgiServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class PkiServer:
    """The animator on 127.0.0.1:<ephemeral>, with a request counter and a movable clock."""

    def __init__(self) -> None:
        self._server = make_server(
            "127.0.0.1", 0, self._app, _ThreadingWsgiServer, handler_class=_QuietHandler
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        self.requests: collections.Counter[str] = collections.Counter()
        self.clock: datetime | None = None
        """When set, the CAs issue CRLs and OCSP responses as of this time."""
        self._animator: WsgiApp | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def serve(self, animator: WsgiApp) -> None:
        self._animator = animator
        self._thread.start()

    def count(self, fragment: str) -> int:
        """Requests answered so far whose path contains ``fragment``."""
        with self._lock:
            return sum(n for path, n in self.requests.items() if fragment in path)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with self._lock:
            self.requests[environ.get("PATH_INFO", "")] += 1
        if self.clock is not None:
            environ["HTTP_X_CERTOMANCER_FAKE_TIME"] = self.clock.isoformat()
        assert self._animator is not None
        return self._animator(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Blackhole:
    """Accepts TCP connections and never sends a byte back."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._held.append(conn)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for conn in self._held:
            conn.close()


@dataclass
class TwoCaPki:
    server: PkiServer
    blackhole: Blackhole
    config: CertomancerConfig
    _certs: dict[str, bytes] = field(default_factory=dict)

    def cert(self, name: str) -> bytes:
        """DER of certificate ``<arch>/<label>``, e.g. ``ca-a/good-1``."""
        if name not in self._certs:
            arch, label = name.split("/", 1)
            pki_arch = self.config.get_pki_arch(ArchLabel(arch))
            self._certs[name] = pki_arch.get_cert(CertLabel(label)).dump()
        return self._certs[name]

    def crl(self, arch: str, repo: str) -> bytes:
        """The CRL the animator would serve now (for the trust store's stored-CRL path)."""
        registry = self.config.get_pki_arch(ArchLabel(arch)).service_registry
        return bytes(registry.get_crl(ServiceLabel(repo), self.server.clock or _now()).dump())

    def material(self, ca_id: str, *, crls: tuple[bytes, ...] = ()) -> CaMaterial:
        """What each CA publishes for the trust store: its root and its intermediates.
        CA A also publishes its cross certificate for CA B's intermediate; its second
        intermediate (a-interm-2) is deliberately NOT published (broken chain)."""
        if ca_id == CA_A:
            return CaMaterial(
                anchors=(self.cert("ca-a/a-root"),),
                intermediates=(
                    self.cert("ca-a/a-interm"),
                    self.cert("ca-a/a-nc-interm"),
                    self.cert("ca-a/b-interm-cross"),
                ),
                crls=crls,
            )
        if ca_id == CA_B:
            return CaMaterial(
                anchors=(self.cert("ca-b/b-root"),),
                intermediates=(self.cert("ca-b/b-interm"),),
                crls=crls,
            )
        raise KeyError(ca_id)

    def trust_store(self, *ca_ids: str) -> TrustStore:
        return TrustStore(cas={ca_id: self.material(ca_id) for ca_id in ca_ids or (CA_A, CA_B)})


def _now() -> datetime:
    return datetime.now(UTC)


def permitted_subtrees_der(organisation: str) -> bytes:
    """NameConstraints permitting only directory names under C=CN, O=<organisation>."""
    base = asn1_x509.Name.build({"country_name": "CN", "organization_name": organisation})
    constraints = asn1_x509.NameConstraints(
        {"permitted_subtrees": [{"base": asn1_x509.GeneralName(name="directory_name", value=base)}]}
    )
    return bytes(constraints.dump())


def write_keys(config_text: str, key_dir: Path) -> None:
    """Generate every key file two-ca.yml names (.rsa.pem: RSA-2048, .ec.pem: P-256)."""
    key_dir.mkdir(parents=True, exist_ok=True)
    for line in config_text.splitlines():
        if "path:" not in line or not line.strip().endswith(".pem}"):
            continue
        file_name = line.split("path:", 1)[1].strip().rstrip("}").strip()
        if file_name.endswith(".rsa.pem"):
            key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = rsa.generate_private_key(
                65537, 2048
            )
        elif file_name.endswith(".ec.pem"):
            key = ec.generate_private_key(ec.SECP256R1())
        else:
            raise ValueError(f"two-ca.yml: key file {file_name} must end .rsa.pem or .ec.pem")
        (key_dir / file_name).write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )


def build_two_ca_pki(directory: Path) -> Generator[TwoCaPki, None, None]:
    server = PkiServer()
    blackhole = Blackhole()
    try:
        text = CONFIG.read_text(encoding="utf-8")
        write_keys(text, directory / "keys")
        rendered = (
            text.replace("@ANIMATOR@", server.base_url)
            .replace("@BLACKHOLE@", blackhole.base_url)
            .replace("@NAME_CONSTRAINTS@", permitted_subtrees_der(PERMITTED_ORGANISATION).hex())
        )
        config = CertomancerConfig.from_yaml(rendered, key_search_dir=str(directory))
        animator = Animator(AnimatorArchStore(config.pki_archs), with_web_ui=False)
        server.serve(animator)
        yield TwoCaPki(server=server, blackhole=blackhole, config=config)
    finally:
        server.close()
        blackhole.close()


def signing_key(pki: TwoCaPki, name: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """The private key of certificate ``<arch>/<label>`` (its ``subject-key`` in
    certomancer's key set), to sign as that bidder."""
    arch, label = name.split("/", 1)
    pki_arch = pki.config.get_pki_arch(ArchLabel(arch))
    key_label = pki_arch.get_cert_spec(CertLabel(label)).subject_key
    info = pki_arch.key_set.get_private_key(key_label)
    key = serialization.load_der_private_key(info.dump(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError(f"{name}: the key set holds a {type(key).__name__}")
    return key


_shared: list[TwoCaPki] = []


def shared_two_ca_pki(tmp_path_factory: pytest.TempPathFactory) -> TwoCaPki:
    """One PKI and its servers for the whole session, whichever module asks first; the
    servers stop when the interpreter exits."""
    if not _shared:
        running = build_two_ca_pki(tmp_path_factory.mktemp("two-ca-pki"))
        _shared.append(next(running))
        atexit.register(running.close)
    return _shared[0]
