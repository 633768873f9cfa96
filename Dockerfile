# syntax=docker/dockerfile:1
#
# Sealed Bid in one container: SoftHSM2 token, development PKI, SQLite, both listeners.
#
#   docker build -t sealed-bid .
#   docker run -d --name sealed-bid -v sealed-bid-state:/var/lib/sealed-bid \
#       -p 127.0.0.1:50051:50051 -p 127.0.0.1:50052:50052 -p 127.0.0.1:50053:50053 sealed-bid
#
# THIS IS THE EMBEDDED DEVELOPMENT DEFAULT. On first start the entrypoint runs
# `sealed-bid init`, which creates a SoftHSM2 token (keys in files on the volume), the
# platform keys on it, and a DEVELOPMENT PKI whose private keys are unencrypted on the
# volume and whose TLS server certificate names only localhost / 127.0.0.1 / ::1.
# Production differs: the token is a real HSM (set pkcs11_module, token_label,
# token_pin_file; hsm_config/README.md), the TLS, operator and platform certificates come
# from a real CA, and the trust store holds the real bidder CAs. See docs/operator-guide.md
# ("Production") for what the code supports today and what it does not yet.

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# softhsm2: the development token; opensc: pkcs11-tool, to inspect a token;
# openssl: the CLI bidders and auditors use to check envelopes and receipts;
# fonts-wqy-microhei: the CJK TrueType font embedded (subset) in opening record PDFs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends softhsm2 opensc openssl fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

# A fixed uid/gid so that a bind-mounted state directory can be chown'ed on the host.
RUN groupadd --system --gid 10001 sealed-bid \
    && useradd --system --uid 10001 --gid sealed-bid --home-dir /var/lib/sealed-bid \
       --no-create-home --shell /usr/sbin/nologin sealed-bid

WORKDIR /src
COPY pyproject.toml README.md ./
COPY sealed_bid ./sealed_bid
COPY ca_bridge ./ca_bridge
RUN pip install . && cd / && rm -rf /src
WORKDIR /

# The entrypoint: `serve` (the default) first runs `sealed-bid init`, which is idempotent:
# it creates the token, platform keys and dev PKI only when they are missing. Any other
# command (`docker run ... sealed-bid tender show T-1 ...`) runs `sealed-bid` directly.
COPY --chmod=0755 <<'SH' /usr/local/bin/sealed-bid-entrypoint
#!/bin/sh
set -eu
cmd=${1:-serve}
[ "$#" -gt 0 ] && shift
if [ "$cmd" = serve ]; then
    # Development default: SoftHSM2 token + dev PKI in $SEALED_BID_STATE_DIR.
    sealed-bid init "$@"
    exec sealed-bid serve "$@"
fi
exec sealed-bid "$cmd" "$@"
SH

# State: database, blobs, opening records, SoftHSM token files, secrets (token PIN), PKI.
# The directory is created owned by the service user so a new named volume inherits it.
RUN install -d -m 0700 -o sealed-bid -g sealed-bid /var/lib/sealed-bid
VOLUME ["/var/lib/sealed-bid"]

# Listen on all interfaces inside the container; publish the ports deliberately.
ENV SEALED_BID_STATE_DIR=/var/lib/sealed-bid \
    SEALED_BID_PUBLIC_LISTEN=0.0.0.0:50051 \
    SEALED_BID_OPERATOR_LISTEN=0.0.0.0:50052 \
    SEALED_BID_AUTHORITY_LISTEN=0.0.0.0:50053
# 50051: public (bidders, the public; TLS). 50052: operators (mutual TLS, OU=operator).
# 50053: CA authorities pushing CRLs and intermediates (mutual TLS, OU=ca-authority).
EXPOSE 50051 50052 50053

USER sealed-bid:sealed-bid
WORKDIR /var/lib/sealed-bid

# A real gRPC call over TLS (ListTenders on the public port), checked against the
# platform root in the state directory: proves TLS, the servicers and the database answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import pathlib, sys; from sealed_bid.client import SealedBidClient; root = pathlib.Path(sys.argv[1]).read_bytes(); c = SealedBidClient('127.0.0.1:50051', root); c.list_tenders(); c.close()", "/var/lib/sealed-bid/pki/platform/dev-platform-root.pem"]

ENTRYPOINT ["/usr/local/bin/sealed-bid-entrypoint"]
CMD ["serve"]
