"""The baseline's server: a bare grpcio client-streaming sink, run in its own process by
``bench/ingest.py``.

Two generic client-streaming methods take a stream of raw ``bytes`` messages (no
protobuf, no hashing, no checks) and answer with the byte count:
``/bench.Sink/PutFile`` writes them to a temporary file in ``--sink-dir`` (no fsync) and
deletes it; ``/bench.Sink/PutNull`` writes them to ``/dev/null``. TLS uses the key and
certificate given (the service's own). It imports nothing from ``sealed_bid`` so its
resident memory is grpcio's alone.

Prints ``listening 127.0.0.1:<port>`` once bound; stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import BinaryIO

import grpc

SERVICE = "bench.Sink"
PUT_FILE = f"/{SERVICE}/PutFile"
PUT_NULL = f"/{SERVICE}/PutNull"
MAX_MESSAGE = 1024 * 1024 + 64 * 1024
"""Room for one 1 MiB chunk; the service itself allows 1 MiB + 4 KiB of framing."""


def _drain(chunks: Iterator[bytes], out: BinaryIO) -> bytes:
    received = 0
    for chunk in chunks:
        out.write(chunk)
        received += len(chunk)
    return received.to_bytes(8, "big")


class _Sink:
    def __init__(self, sink_dir: Path) -> None:
        self._dir = sink_dir

    def put_file(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        fd, name = tempfile.mkstemp(prefix="sink-", dir=self._dir)
        try:
            with os.fdopen(fd, "wb") as out:
                return _drain(chunks, out)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)

    def put_null(self, chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        with open(os.devnull, "wb") as out:
            return _drain(chunks, out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--key", type=Path, required=True, help="TLS server key (PEM)")
    parser.add_argument("--cert", type=Path, required=True, help="TLS server chain (PEM)")
    parser.add_argument("--sink-dir", type=Path, required=True, help="where PutFile writes")
    args = parser.parse_args(argv)

    sink = _Sink(args.sink_dir)
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "PutFile": grpc.stream_unary_rpc_method_handler(sink.put_file),
            "PutNull": grpc.stream_unary_rpc_method_handler(sink.put_null),
        },
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        handlers=[handler],
        options=[("grpc.max_receive_message_length", MAX_MESSAGE)],
    )
    credentials = grpc.ssl_server_credentials([(args.key.read_bytes(), args.cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    if not port:
        print("cannot bind 127.0.0.1:0", file=sys.stderr)
        return 1
    server.start()
    print(f"listening 127.0.0.1:{port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(1.0).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
