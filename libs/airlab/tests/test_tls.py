"""The lab's own authority and certificates, in a real TLS handshake on loopback: a certificate of the
authority is accepted both ways, one of another authority is refused, none at all is refused where a
client certificate is required."""

import socket
import ssl
import threading

import pytest

from airlab import tls


def handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str:
    """'ok', or the error the client saw."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            with server.wrap_socket(connection, server_side=True) as secured:
                secured.sendall(b"hi")
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as secured,
        ):
            return "ok" if secured.recv(2) == b"hi" else "no data"
    except (ssl.SSLError, OSError) as exc:
        return type(exc).__name__
    finally:
        thread.join(5)
        listener.close()


def test_the_labs_certificates_are_trusted_both_ways_and_no_others(tmp_path):
    server, client = tls.issue(tmp_path / "lab", "manager"), tls.issue(tmp_path / "lab", "cli")
    assert server.ca == client.ca and oct(server.key.stat().st_mode & 0o777) == "0o600"
    assert handshake(server.server_context(require_client_cert=True), client.client_context()) == "ok"
    stranger = tls.issue(tmp_path / "elsewhere", "cli")
    # The server's certificate is not the stranger's authority's, and the stranger's is not the lab's.
    assert handshake(server.server_context(), stranger.client_context()) != "ok"
    assert handshake(server.server_context(require_client_cert=True), stranger.client_context()) != "ok"
    anonymous = ssl.create_default_context(cafile=str(server.ca))
    assert handshake(server.server_context(require_client_cert=True), anonymous) != "ok"
    assert handshake(server.server_context(), anonymous) == "ok"  # server-only TLS (gRPC, dashboard)
    # Made once: issuing again keeps the same certificate.
    assert tls.issue(tmp_path / "lab", "manager").cert.read_bytes() == server.cert.read_bytes()


def test_tls_settings_come_whole_or_not_at_all(tmp_path):
    from airlab.settings import TlsSettings

    assert tls.own_files(TlsSettings()) is None
    with pytest.raises(ValueError, match="together"):
        tls.own_files(TlsSettings(ca_file=str(tmp_path / "ca.pem")))
