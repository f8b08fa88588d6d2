"""`airlab-dashboard`: serves the dashboard on dashboard.host:dashboard.port (loopback by default) for the
Lab API at dashboard.lab_address; `airlab up` starts it beside the services."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from airlab import tls
from airlab.blobs import LocalArtifactStore, S3ArtifactStore, artifact_store_from
from airlab.dataset_access import upload_key
from airlab.logs import configure_logging
from airlab.settings import Settings
from airlab_dashboard.app import create_app

log = logging.getLogger(__name__)


def upload_saver(settings: Settings) -> Callable[[str, str, bytes], str]:
    """Where an uploaded CSV goes: the lab's artifact store, under uploads/<user>/<digest>/<its name> (the
    user's own: airlab.dataset_access), named
    to the runner as the file's path (a local store on this host) or as s3://BUCKET/KEY."""
    store = artifact_store_from(settings)

    def save(owner: str, filename: str, data: bytes) -> str:
        stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(filename).stem).strip("_")[:64] or "data"
        key = upload_key(owner, hashlib.sha256(data).hexdigest()[:16], stem)
        store.put(key, data, content_type="text/csv")
        if isinstance(store, LocalArtifactStore):
            path = store.root / key
            # Private to the lab: a job of its owner's research gets it through the runner's copy
            # (airlab_runner.staging), never through permission bits.
            path.chmod(0o600)
            for folder in [path.parent, path.parent.parent, path.parent.parent.parent]:
                folder.chmod(0o700)
            return str(path)
        if isinstance(store, S3ArtifactStore):
            return f"s3://{store.bucket}/{key}"
        raise RuntimeError("uploads need a local or S3 artifact store")

    return save


async def serve(settings: Settings, sock: socket.socket) -> None:
    dashboard = settings.dashboard
    files = tls.own_files(settings.tls)
    app = create_app(
        dashboard.lab_address,
        artifact_store_from(settings),
        uploads=upload_saver(settings),
        max_upload_bytes=dashboard.max_upload_mib << 20,
        # Served over TLS, its cookie is only ever sent over TLS too.
        secure_cookies=files is not None or os.environ.get("AIRLAB_DASHBOARD_SECURE_COOKIES") == "1",
        lab_tls=files,
        metrics_urls=dashboard.metrics_urls,
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        ssl_certfile=str(files.cert) if files else None,
        ssl_keyfile=str(files.key) if files else None,
    )
    await uvicorn.Server(config).serve(sockets=[sock])


def listen(settings: Settings) -> socket.socket:
    """The listening socket (port 0: a free one, written to the port file for `airlab up`)."""
    dashboard = settings.dashboard
    sock = socket.socket(socket.AF_INET6 if ":" in dashboard.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((dashboard.host, dashboard.port))
    port = sock.getsockname()[1]
    if settings.port_file:
        Path(settings.port_file).write_text(str(port))
    log.info(
        "dashboard listening", extra={"url": f"http://{dashboard.host}:{port}", "lab": dashboard.lab_address}
    )
    return sock


def main() -> None:
    settings = Settings(service="dashboard")
    configure_logging("dashboard", settings.log_level, settings.log_format)
    asyncio.run(serve(settings, listen(settings)))
