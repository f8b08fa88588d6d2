"""Container health check: `python -m airlab.healthcheck [HOST:PORT]` exits 0 when the service there says
SERVING through the standard gRPC health service (default: this container's own port)."""

from __future__ import annotations

import os
import sys

from airlab import tls
from airlab.grpc_client import health_status
from airlab.settings import Settings


def main() -> int:
    address = sys.argv[1] if len(sys.argv) > 1 else f"127.0.0.1:{os.environ.get('AIRLAB_GRPC_PORT', '50051')}"
    # The container's own certificate, when it serves TLS.
    status = health_status(address, timeout=2.0, tls=tls.own_files(Settings().tls))
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
