"""Ingest benchmark: how fast the real service takes a sealed envelope over loopback TLS,
and whether its memory stays flat as the envelope grows, next to a raw grpcio
client-streaming baseline measured in the same run.

Both servers run in their own processes (the service via ``python -m sealed_bid.cli.main
serve`` on a fresh state directory, the baseline via ``bench/grpc_sink.py``), so their
peak RSS (``VmHWM`` in ``/proc/<pid>/status``) is theirs alone; this process is the
client and also seals the envelopes. Everything lives in one temporary directory that is
deleted at the end. Opening bids is not measured here.

Run from the repository root, after ``scripts/setup``:
``.venv/bin/python -m bench.ingest [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import median
from typing import IO, TypeVar

import grpc

from bench.grpc_sink import PUT_FILE, PUT_NULL
from sealed_bid.client import SealedBidClient, ServiceError
from sealed_bid.client.client import DEFAULT_CHUNK, submission_stream
from sealed_bid.crypto.seal import SealedBid, seal_bid
from sealed_bid.devpki import DevPki, load_dev_pki, load_signer
from sealed_bid.v1 import sealed_bid_pb2 as pb

MIB = 1024 * 1024
MB = 1_000_000
"""Rates are in MB/s with MB = 10^6 bytes (as in /work/shared/FACTS.md); memory in MiB."""
CHUNK = DEFAULT_CHUNK
"""1 MiB: the client's default and the service's largest accepted chunk."""
DEFAULT_SIZES_MIB = (1, 64, 512)
QUICK_SIZES_MIB = (1, 64)
DEFAULT_REPEATS = 3
MAX_SIZE_MIB = 2047
"""The service's hard envelope limit is 2 GiB; sealing adds a few KiB of CMS."""
WARMUP_BYTES = 64 * 1024
WARMUP_BIDDER = "beta"
SIZE_BIDDERS = ("alpha", "gamma", "delta")
TENDER_ID = "BENCH-INGEST"
TENDER_OPEN_FOR = timedelta(minutes=30)
"""Comfortably longer than the whole run (under a minute with the defaults)."""
START_TIMEOUT_S = 60.0
MIN_WALL_FOR_SHARE_S = 0.2

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
SINK_SCRIPT = Path(__file__).resolve().parent / "grpc_sink.py"


# --- child processes -------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """A process's resident memory (``/proc/<pid>/status``, KiB) and CPU time so far
    (user + system, all threads, ``/proc/<pid>/stat``)."""

    rss_kib: int
    hwm_kib: int
    cpu_s: float


def _child_env() -> dict[str, str]:
    """The caller's environment without any SEALED_BID_* override, plus ephemeral ports."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEALED_BID_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["SEALED_BID_PUBLIC_LISTEN"] = "127.0.0.1:0"
    env["SEALED_BID_OPERATOR_LISTEN"] = "127.0.0.1:0"
    return env


class ServerProcess:
    """A server in its own process: started, asked for its ports (from the line it prints
    when bound), measured through /proc, stopped with SIGTERM."""

    def __init__(self, name: str, argv: list[str], log_path: Path, ready: re.Pattern[str]) -> None:
        self.name = name
        self._argv = argv
        self._log_path = log_path
        self._ready = ready
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[str] | None = None
        self.peak_reset_works = True

    @property
    def pid(self) -> int:
        return self._running().pid

    def start(self) -> re.Match[str]:
        self._log = self._log_path.open("w", encoding="utf-8")
        self._proc = subprocess.Popen(
            self._argv,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=_child_env(),
            text=True,
        )
        assert self._proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        seen: list[str] = []
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    break
                line = self._proc.stdout.readline()
                if not line:
                    break  # the process closed stdout: it died
                seen.append(line.rstrip())
                if match := self._ready.search(line):
                    return match
        self.stop()
        raise RuntimeError(
            f"{self.name} did not report its port within {START_TIMEOUT_S:.0f} s;"
            f" stdout: {seen!r}; log tail:\n{self.log_tail()}"
        )

    def usage(self) -> Usage:
        values: dict[str, int] = {}
        status = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        for line in status.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])  # "  65432 kB"
        stat = Path(f"/proc/{self.pid}/stat").read_text(encoding="ascii")
        # Fields after "(comm)": state is field 3, utime and stime are fields 14 and 15.
        fields = stat.rpartition(")")[2].split()
        ticks = int(fields[11]) + int(fields[12])
        return Usage(
            rss_kib=values["VmRSS"],
            hwm_kib=values["VmHWM"],
            cpu_s=ticks / os.sysconf("SC_CLK_TCK"),
        )

    def reset_peak(self) -> None:
        """Reset VmHWM to the current RSS (``echo 5 > /proc/<pid>/clear_refs``, Linux
        4.0+), so the next reading is the peak of one measurement alone. If the kernel
        refuses, VmHWM stays the peak since start and ``peak_reset_works`` says so."""
        if not self.peak_reset_works:
            return
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5", encoding="ascii")
        except OSError:
            self.peak_reset_works = False

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self._log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _running(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.name} is not running; log tail:\n{self.log_tail()}")
        return self._proc


# --- envelopes -------------------------------------------------------------------------


def _random_file(path: Path, size: int) -> None:
    with path.open("wb") as f:
        remaining = size
        while remaining:
            block = os.urandom(min(CHUNK, remaining))
            f.write(block)
            remaining -= len(block)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            yield block


def _sha256_file(path: Path) -> bytes:
    """What ``SealedBidClient.submit_bid`` does before it streams."""
    digest = hashlib.sha256()
    for block in _file_chunks(path):
        digest.update(block)
    return digest.digest()


class Sealer:
    """Seals random packages for the bench tender with dev-PKI bidders. A bidder used
    again gets a strictly later signingTime (UTCTime has whole seconds), so its new
    envelope replaces the old one instead of being refused as a replay."""

    def __init__(self, pki: DevPki, tender_cert_der: bytes, workdir: Path) -> None:
        self._pki = pki
        self._tender_cert = tender_cert_der
        self._workdir = workdir
        self._last: dict[str, datetime] = {}

    def seal(self, bidder: str, package_bytes: int, name: str) -> tuple[SealedBid, float]:
        out = self._workdir / name
        out.mkdir(parents=True)
        package = out / "package.bin"
        _random_file(package, package_bytes)
        when = datetime.now(UTC).replace(microsecond=0)
        if bidder in self._last and when <= self._last[bidder]:
            when = self._last[bidder] + timedelta(seconds=1)
        self._last[bidder] = when
        started = time.perf_counter()
        sealed = seal_bid(
            package,
            load_signer(self._pki.bidders[bidder]),
            self._tender_cert,
            out,
            oaep_hash="sha1",  # SoftHSM2 unwraps OAEP with SHA-1 only (FACTS.md)
            signing_time=when,
        )
        seconds = time.perf_counter() - started
        package.unlink()
        return sealed, seconds


# --- measurements ----------------------------------------------------------------------


@dataclass(frozen=True)
class Submission:
    hash_s: float
    stream_s: float
    """From the first message to the receipt, trailer and server checks included."""
    tail_s: float
    """From grpc taking the trailer to the receipt: roughly the server's work after the
    last byte (fsync, envelope inspection, signature and chain checks, receipt on the
    token, database commit), plus whatever was still in flight."""
    bid_id: str


def _mark_trailer(
    requests: Iterator[pb.SubmitBidRequest], marks: dict[str, float]
) -> Iterator[pb.SubmitBidRequest]:
    for request in requests:
        if request.WhichOneof("part") == "trailer":
            marks["trailer"] = time.perf_counter()
        yield request


def hash_envelope(sealed: SealedBid) -> tuple[bytes, float]:
    """The first step of ``SealedBidClient.submit_bid``, timed."""
    started = time.perf_counter()
    digest = _sha256_file(sealed.envelope_path)
    seconds = time.perf_counter() - started
    if digest.hex() != sealed.sha256:
        raise RuntimeError("the envelope changed on disk after sealing")
    return digest, seconds


def stream_envelope(
    client: SealedBidClient, tender_id: str, sealed: SealedBid, digest: bytes, hash_s: float
) -> Submission:
    """The second step of ``SealedBidClient.submit_bid`` (the same request stream),
    timed up to the receipt."""
    started = time.perf_counter()
    marks: dict[str, float] = {}
    requests = submission_stream(
        tender_id,
        sealed.envelope_path,
        sealed.size,
        digest,
        sealed.outer_signature_der,
        CHUNK,
    )
    result = client.submit_stream(_mark_trailer(requests, marks))
    done = time.perf_counter()
    if result.duplicate or result.receipt.content.size != sealed.size:
        raise RuntimeError(f"unexpected receipt: {result.receipt.content}")
    return Submission(
        hash_s=hash_s,
        stream_s=done - started,
        tail_s=done - marks.get("trailer", done),
        bid_id=result.receipt.content.bid_id,
    )


def baseline_put(put: grpc.StreamUnaryMultiCallable[bytes, bytes], path: Path) -> float:
    started = time.perf_counter()
    reply: bytes = put(_file_chunks(path))
    seconds = time.perf_counter() - started
    if int.from_bytes(reply, "big") != path.stat().st_size:
        raise RuntimeError("the baseline sink received a different number of bytes")
    return seconds


@dataclass(frozen=True)
class Span:
    """A server's usage just before one transfer (peak reset) and just after it, and
    the CPU time this client process spent meanwhile."""

    before: Usage
    after: Usage
    client_cpu_s: float

    @property
    def delta_kib(self) -> int:
        return self.after.hwm_kib - self.before.hwm_kib

    @property
    def server_cpu_s(self) -> float:
        return self.after.cpu_s - self.before.cpu_s


def _own_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def measured(server: ServerProcess, transfer: Callable[[], T]) -> tuple[T, Span]:
    """Run one transfer against ``server``. Dirty pages left by sealing and by earlier
    transfers are flushed first (``os.sync``, untimed): otherwise their writeback competes
    for the two cores during the measurement and the rates swing by 2x from run to run."""
    os.sync()
    server.reset_peak()
    before = server.usage()
    client_before = _own_cpu_s()
    result = transfer()
    client_cpu_s = _own_cpu_s() - client_before
    return result, Span(before, server.usage(), client_cpu_s)


@dataclass(frozen=True)
class Trial:
    """One envelope of one size: sealed, submitted, then streamed to both raw sinks."""

    envelope_bytes: int
    seal_s: float
    service: Submission
    service_span: Span
    raw_file_s: float
    raw_file_span: Span
    raw_null_s: float
    raw_null_span: Span


# --- report ----------------------------------------------------------------------------


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f}"


def _delta(kib: float) -> str:
    return f"{kib / 1024:+.1f}"


def _mbps(size: int, seconds: float) -> float:
    return size / MB / seconds if seconds > 0 else 0.0


def _cpu(seconds: float, wall: float) -> str:
    """CPU seconds and their share of the wall time; no share below ~20 clock ticks."""
    if wall < MIN_WALL_FOR_SHARE_S:
        return f"{seconds:.2f}"
    return f"{seconds:.2f} ({seconds / wall:.0%})"


def _ratio(rate: float, baseline: float) -> str:
    return f"{rate / baseline:.0%}" if baseline > 0 else "-"


def _spread(values: Sequence[float]) -> str:
    return f"{min(values):.0f}..{max(values):.0f}" if len(values) > 1 else "-"


def print_report(
    results: Mapping[int, Sequence[Trial]],
    service: ServerProcess,
    sink: ServerProcess,
    idle: tuple[Usage, Usage],
    total_s: float,
) -> None:
    trials = [t for ts in results.values() for t in ts]
    repeats = max((len(ts) for ts in results.values()), default=0)
    print()
    print(
        f"Ingest rate, MB/s (MB = 10^6 bytes), median of {repeats} run(s) per size;"
        " loopback TLS, 1 MiB chunks"
    )
    head = (
        f"{'size':>7} {'envelope B':>11} {'seal s':>6} {'hash s':>6} {'stream s':>8} "
        f"{'tail s':>6} | {'e2e':>5} {'stream':>6} {'stream range':>12} {'xfer':>5} | "
        f"{'raw>file':>8} {'raw>null':>8} | {'stream/raw>file':>15}"
    )
    print(head)
    print("-" * len(head))
    for size_mib, ts in results.items():
        size = ts[0].envelope_bytes
        stream_rates = [_mbps(t.envelope_bytes, t.service.stream_s) for t in ts]
        e2e = median(_mbps(t.envelope_bytes, t.service.hash_s + t.service.stream_s) for t in ts)
        xfer = median(_mbps(t.envelope_bytes, t.service.stream_s - t.service.tail_s) for t in ts)
        raw_file = median(_mbps(t.envelope_bytes, t.raw_file_s) for t in ts)
        raw_null = median(_mbps(t.envelope_bytes, t.raw_null_s) for t in ts)
        print(
            f"{size_mib:>4}MiB {size:>11} {median(t.seal_s for t in ts):>6.2f} "
            f"{median(t.service.hash_s for t in ts):>6.3f} "
            f"{median(t.service.stream_s for t in ts):>8.3f} "
            f"{median(t.service.tail_s for t in ts):>6.3f} | {e2e:>5.0f} "
            f"{median(stream_rates):>6.0f} {_spread(stream_rates):>12} {xfer:>5.0f} | "
            f"{raw_file:>8.0f} {raw_null:>8.0f} | {_ratio(median(stream_rates), raw_file):>15}"
        )
    print()
    if service.peak_reset_works and sink.peak_reset_works:
        peak_kind = "VmHWM reset (clear_refs) before each transfer: the peak of that transfer"
    else:
        peak_kind = "VmHWM since process start (clear_refs was refused: peaks are cumulative)"
    print(f"Server resident memory, MiB; peak = {peak_kind}; worst of the runs per size")
    head = (
        f"{'size':>7} | {'service RSS before':>18} {'peak':>6} {'delta':>6} | "
        f"{'raw sink RSS before':>19} {'peak>file':>9} {'delta':>6} {'peak>null':>9} {'delta':>6}"
    )
    print(head)
    print("-" * len(head))
    for size_mib, ts in results.items():
        print(
            f"{size_mib:>4}MiB | {_mib(ts[0].service_span.before.rss_kib):>18} "
            f"{_mib(max(t.service_span.after.hwm_kib for t in ts)):>6} "
            f"{_delta(max(t.service_span.delta_kib for t in ts)):>6} | "
            f"{_mib(ts[0].raw_file_span.before.rss_kib):>19} "
            f"{_mib(max(t.raw_file_span.after.hwm_kib for t in ts)):>9} "
            f"{_delta(max(t.raw_file_span.delta_kib for t in ts)):>6} "
            f"{_mib(max(t.raw_null_span.after.hwm_kib for t in ts)):>9} "
            f"{_delta(max(t.raw_null_span.delta_kib for t in ts)):>6}"
        )
    if trials:
        peaks = [t.service_span.after.hwm_kib for t in trials]
        print(
            f"service: {_mib(idle[0].rss_kib)} MiB after start, {_mib(idle[1].rss_kib)} after"
            f" the warm-up bid; peaks of all {len(trials)} submissions"
            f" {_mib(min(peaks))}..{_mib(max(peaks))} MiB; RSS at the end"
            f" {_mib(service.usage().rss_kib)} MiB"
        )
    client_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print()
    print(
        "CPU seconds per transfer (user+system, all threads; median), as a share of the"
        " transfer's wall time (100% = one core busy; not shown under 0.2 s)"
    )
    head = (
        f"{'size':>7} | {'service cpu':>11} {'client cpu':>10} | {'sink>file cpu':>13} "
        f"{'client cpu':>10} | {'sink>null cpu':>13} {'client cpu':>10}"
    )
    print(head)
    print("-" * len(head))
    for size_mib, ts in results.items():
        cells = []
        for spans, walls in (
            ([t.service_span for t in ts], [t.service.stream_s for t in ts]),
            ([t.raw_file_span for t in ts], [t.raw_file_s for t in ts]),
            ([t.raw_null_span for t in ts], [t.raw_null_s for t in ts]),
        ):
            wall = median(walls)
            server = median(s.server_cpu_s for s in spans)
            client = median(s.client_cpu_s for s in spans)
            cells.append((_cpu(server, wall), _cpu(client, wall)))
        print(
            f"{size_mib:>4}MiB | {cells[0][0]:>11} {cells[0][1]:>10} | {cells[1][0]:>13} "
            f"{cells[1][1]:>10} | {cells[2][0]:>13} {cells[2][1]:>10}"
        )
    print(f"this client process (sealing included): peak RSS {_mib(client_peak_kib)} MiB")
    print()
    print("hash     client SHA-256 of the envelope before streaming (as submit_bid does)")
    print("stream   first message -> signed receipt back: spool+hash, fsync, CMS checks,")
    print("         outer signature + chain, receipt signed on the SoftHSM token, DB commit")
    print("tail     part of stream after grpc took the trailer (roughly the server's own work")
    print("         after the last byte)")
    print("e2e      envelope bytes / (hash + stream); stream: envelope bytes / stream")
    print("xfer     envelope bytes / (stream - tail): the transfer alone, approximately")
    print("raw>file bench/grpc_sink.py, grpcio client-streaming of the same file, same TLS")
    print("         cert, no checks, written to a temp file (no fsync) and deleted")
    print("raw>null the same to /dev/null")
    print(f"service pid {service.pid}, raw sink pid {sink.pid}; whole run {total_s:.0f} s")


# --- the run ---------------------------------------------------------------------------


def _init_state(state: Path, log_path: Path) -> None:
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(
            [sys.executable, "-m", "sealed_bid.cli.main", "init", "--state-dir", str(state)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            check=False,
            timeout=120,
        )
    if done.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise RuntimeError(f"sealed-bid init failed ({done.returncode}):\n{tail}")


def _create_tender(pki: DevPki, operator_port: int, max_bytes: int) -> pb.Tender:
    with SealedBidClient(
        f"127.0.0.1:{operator_port}",
        pki.platform_root.cert.read_bytes(),
        pki.operator.key.read_bytes(),
        pki.operator.cert.read_bytes(),
    ) as operator:
        deadline = datetime.now(UTC).replace(microsecond=0) + TENDER_OPEN_FOR
        return operator.create_tender(
            TENDER_ID,
            "Ingest benchmark (random packages)",
            deadline,
            deadline + timedelta(minutes=1),
            ["dev-bidder-ca"],
            max_bytes,
        )


class Bench:
    """The client side: a bidder connection to the service and a raw channel to the sink."""

    def __init__(
        self,
        service: ServerProcess,
        sink: ServerProcess,
        bidder: SealedBidClient,
        sink_channel: grpc.Channel,
        sealer: Sealer,
        tender_id: str,
    ) -> None:
        self._service = service
        self._sink = sink
        self._bidder = bidder
        self._put_file = sink_channel.stream_unary(PUT_FILE, None, None)  # raw bytes
        self._put_null = sink_channel.stream_unary(PUT_NULL, None, None)
        self._sealer = sealer
        self._tender_id = tender_id
        self._submissions = 0

    def warm_up(self) -> None:
        """TLS handshakes, lazy imports and first-use caches on both servers, so the
        first measured size does not pay for them."""
        sealed, _ = self._sealer.seal(WARMUP_BIDDER, WARMUP_BYTES, "warm-up")
        digest, hash_s = hash_envelope(sealed)
        stream_envelope(self._bidder, self._tender_id, sealed, digest, hash_s)
        baseline_put(self._put_file, sealed.envelope_path)
        baseline_put(self._put_null, sealed.envelope_path)
        sealed.envelope_path.unlink()

    def trial(self, package_bytes: int) -> Trial:
        bidder = SIZE_BIDDERS[self._submissions % len(SIZE_BIDDERS)]
        self._submissions += 1
        sealed, seal_s = self._sealer.seal(bidder, package_bytes, f"bid-{self._submissions}")
        try:
            digest, hash_s = hash_envelope(sealed)
            submission, service_span = measured(
                self._service,
                lambda: stream_envelope(self._bidder, self._tender_id, sealed, digest, hash_s),
            )
            path = sealed.envelope_path
            raw_file_s, raw_file_span = measured(
                self._sink, lambda: baseline_put(self._put_file, path)
            )
            raw_null_s, raw_null_span = measured(
                self._sink, lambda: baseline_put(self._put_null, path)
            )
        finally:
            sealed.envelope_path.unlink()
        return Trial(
            sealed.size,
            seal_s,
            submission,
            service_span,
            raw_file_s,
            raw_file_span,
            raw_null_s,
            raw_null_span,
        )


def run(sizes_mib: Sequence[int], repeats: int, tmp_parent: Path | None) -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sealed-bid-bench-", dir=tmp_parent) as tmp_text:
        tmp = Path(tmp_text)
        state, files, sink_dir = tmp / "state", tmp / "files", tmp / "sink"
        files.mkdir()
        sink_dir.mkdir()
        print(f"work directory {tmp} (deleted at the end)")
        print(f"sizes {', '.join(f'{s} MiB' for s in sizes_mib)}; {repeats} run(s) each")
        print("init: SoftHSM2 token, platform keys, dev PKI ...", flush=True)
        _init_state(state, tmp / "init.log")
        pki = load_dev_pki(state / "pki")
        service = ServerProcess(
            "sealed-bid serve",
            [sys.executable, "-m", "sealed_bid.cli.main", "serve", "--state-dir", str(state)],
            tmp / "serve.log",
            re.compile(r"serving: public 127\.0\.0\.1:(\d+), operator (\d+)"),
        )
        sink = ServerProcess(
            "raw grpcio sink",
            [
                *(sys.executable, str(SINK_SCRIPT)),
                *("--key", str(pki.server.key), "--cert", str(pki.server.cert)),
                *("--sink-dir", str(sink_dir)),
            ],
            tmp / "sink.log",
            re.compile(r"listening 127\.0\.0\.1:(\d+)"),
        )
        root_pem = pki.platform_root.cert.read_bytes()
        try:
            ready = service.start()
            public_port, operator_port = int(ready.group(1)), int(ready.group(2))
            sink_port = int(sink.start().group(1))
            print(
                f"service pid {service.pid} on 127.0.0.1:{public_port} (operator"
                f" {operator_port}); raw sink pid {sink.pid} on 127.0.0.1:{sink_port}",
                flush=True,
            )
            after_start = service.usage()
            max_envelope = min(2 * 1024 * MIB, max(sizes_mib) * MIB + MIB)
            tender = _create_tender(pki, operator_port, max_envelope)
            sealer = Sealer(pki, tender.tender_certificate, files)
            with (
                SealedBidClient(f"127.0.0.1:{public_port}", root_pem) as bidder,
                grpc.secure_channel(
                    f"127.0.0.1:{sink_port}", grpc.ssl_channel_credentials(root_pem)
                ) as sink_channel,
            ):
                bench = Bench(service, sink, bidder, sink_channel, sealer, tender.tender_id)
                bench.warm_up()
                after_warm_up = service.usage()
                results: dict[int, list[Trial]] = {}
                for size_mib in sizes_mib:
                    print(f"{size_mib} MiB:", end="", flush=True)
                    for _ in range(repeats):
                        trial = bench.trial(size_mib * MIB)
                        results.setdefault(size_mib, []).append(trial)
                        rate = _mbps(trial.envelope_bytes, trial.service.stream_s)
                        print(f" {rate:.0f}", end="", flush=True)
                    print(" MB/s (stream)", flush=True)
            print_report(
                results,
                service,
                sink,
                (after_start, after_warm_up),
                time.perf_counter() - started,
            )
        except ServiceError as exc:
            print(f"\nthe service refused: {exc.code} ({exc.status}): {exc.message}")
            print(f"service log tail:\n{service.log_tail()}")
            return 1
        finally:
            sink.stop()
            service.stop()
    return 0


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("sizes are whole MiB, e.g. 1,64,512") from None
    if not sizes or any(not 1 <= s <= MAX_SIZE_MIB for s in sizes):
        raise argparse.ArgumentTypeError(f"each size must be 1..{MAX_SIZE_MIB} MiB")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Measure envelope ingest (MB/s, server peak RSS) against a raw grpcio"
        " client-streaming baseline, over loopback TLS with 1 MiB chunks."
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--sizes",
        type=_sizes,
        default=list(DEFAULT_SIZES_MIB),
        help="comma-separated package sizes in MiB (default 1,64,512)",
    )
    which.add_argument("--quick", action="store_true", help="only 1 and 64 MiB")
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEATS,
        help=f"runs per size, each a freshly sealed envelope (default {DEFAULT_REPEATS})",
    )
    parser.add_argument(
        "--tmp-dir", type=Path, help="parent of the work directory (default: system temp)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = list(QUICK_SIZES_MIB) if args.quick else args.sizes
    return run(sizes, args.repeat, args.tmp_dir)


if __name__ == "__main__":
    sys.exit(main())
