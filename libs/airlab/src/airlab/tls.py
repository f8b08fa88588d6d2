"""TLS for every hop: a lab's own certificate authority and a certificate per process, and what the gRPC
servers and clients, NATS and the dashboard are given from them.

`airlab up` makes the authority once (run/tls/ca.pem, its key 0600) and a certificate per process (the bus,
the services, the dashboard, the CLI), each valid for localhost and 127.0.0.1 and usable as server and as
client: nats-server asks every client for one (mutual TLS: the services talk over the bus), gRPC servers
and the dashboard present theirs, and clients check them against the authority. Plain text is an explicit
setting (`tls.plaintext`), which the README and `airlab status` name. Any process given the three files
(tls.ca_file, cert_file, key_file) serves and connects over TLS: compose makes them in a one-shot
container and k8s takes them from a Secret (`airlab tls-files`, one certificate for all services)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from airlab.auth import write_private
from airlab.settings import Settings, TlsSettings

CA_FILE, CA_KEY_FILE = "ca.pem", "ca-key.pem"
# Who gets a certificate in a stack: the bus, the five services, the dashboard, and the CLI (a client).
STACK_NAMES = ("nats", "idea", "manager", "coder", "reviewer", "runner", "dashboard", "cli")
LIFETIME = datetime.timedelta(days=825)
# An authority signs certificates (and revocation lists), nothing else.
AUTHORITY_USAGE = x509.KeyUsage(
    digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
    key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
    decipher_only=False,
)  # fmt: skip
HOSTS = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    """One process's certificate and key, and the authority it trusts (PEM files)."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self, *, require_client_cert: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
        return context

    def client_context(self) -> ssl.SSLContext:
        """Checks the server against the lab's authority and presents this certificate."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def ensure_authority(directory: Path) -> tuple[Path, Path]:
    """The lab's certificate authority in `directory` (made once): (certificate, key)."""
    cert_path, key_path = directory / CA_FILE, directory / CA_KEY_FILE
    if cert_path.is_file() and key_path.is_file():
        return cert_path, key_path
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "airlab lab authority")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME * 2)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(AUTHORITY_USAGE, critical=True)
        .sign(key, hashes.SHA256())
    )
    write_private(key_path, _key_pem(key))
    write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issue(directory: Path, name: str, hosts: tuple[str, ...] = HOSTS) -> TlsFiles:
    """A certificate for `name` signed by the lab's authority in `directory`, for `hosts` (names and IP
    addresses), as server and client; made once, again when it is missing or the authority changed."""
    ca_path, ca_key_path = ensure_authority(directory)
    files = TlsFiles(ca_path, directory / f"{name}.pem", directory / f"{name}-key.pem")
    authority = x509.load_pem_x509_certificate(ca_path.read_bytes())
    if files.cert.is_file() and files.key.is_file():
        existing = x509.load_pem_x509_certificate(files.cert.read_bytes())
        if existing.issuer == authority.subject and existing.not_valid_after_utc > datetime.datetime.now(
            datetime.UTC
        ) + datetime.timedelta(days=30):
            return files
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(files.key, _key_pem(key))
    write_private(files.cert, certificate.public_bytes(serialization.Encoding.PEM))
    return files


# The names a deployment's services are reached by: compose's service names, and k8s's in the airlab
# namespace (short, namespaced and fully qualified), besides loopback for the containers' own checks.
DEPLOY_HOSTS = (
    *HOSTS,
    *(
        f"{name}{suffix}"
        for name in ("nats", "manager", "idea", "coder", "reviewer", "runner", "dashboard")
        for suffix in ("", ".airlab", ".airlab.svc", ".airlab.svc.cluster.local")
    ),
)
# A deployment's files, named as cert-manager names a certificate Secret's keys (so one can replace it).
DEPLOY_FILES = ("ca.crt", "tls.crt", "tls.key")


def write_deploy_files(directory: Path, owner: tuple[int, int] | None = None) -> TlsFiles:
    """A deployment's TLS files in `directory`: the authority's certificate and one certificate for every
    service (DEPLOY_HOSTS), as ca.crt, tls.crt and tls.key (0600, given to `owner` when set: the services'
    uid in compose). The authority's key stays in directory/authority (0700, not for the services). Made
    once: an existing set is kept."""
    ca, cert, key = (directory / name for name in DEPLOY_FILES)
    files = TlsFiles(ca, cert, key)
    if all(path.is_file() for path in (ca, cert, key)):
        return files
    made = issue(directory / "authority", "lab", DEPLOY_HOSTS)
    write_private(key, made.key.read_bytes())
    ca.write_bytes(made.ca.read_bytes())
    cert.write_bytes(made.cert.read_bytes())
    (directory / "authority").chmod(0o700)
    if owner is not None:
        os.chown(key, *owner)
    return files


def directory_of(workspace: Path) -> Path:
    """Where `airlab up` keeps a workspace's authority and certificates."""
    return workspace / "run" / "tls"


def own_files(settings: TlsSettings) -> TlsFiles | None:
    """This process's files (tls.ca_file, cert_file, key_file); None when TLS is not configured."""
    named = (settings.ca_file, settings.cert_file, settings.key_file)
    if not all(named):
        if any(named):
            raise ValueError("TLS needs tls.ca_file, tls.cert_file and tls.key_file together")
        return None
    return TlsFiles(*(Path(name) for name in named))


def client_files(settings: Settings) -> TlsFiles | None:
    """What a client (the CLI, airlab.client, tools) connects with: the configured files, else the CLI's
    certificate of the stack `airlab up` runs in the workspace when that stack uses TLS."""
    configured = own_files(settings.tls)
    if configured is not None:
        return configured
    from airlab.stack import load_state  # the stack imports this module

    state = load_state(settings.workspace.resolve())
    return state.client_tls() if state is not None else None


def cli_files(workspace: Path) -> TlsFiles:
    """The CLI's certificate (a client's) of the stack in `workspace`."""
    directory = directory_of(workspace)
    return TlsFiles(directory / CA_FILE, directory / "cli.pem", directory / "cli-key.pem")


def environment(files: TlsFiles) -> dict[str, str]:
    """The variables that give a process started by the stack its files."""
    return {
        "AIRLAB_TLS__CA_FILE": str(files.ca),
        "AIRLAB_TLS__CERT_FILE": str(files.cert),
        "AIRLAB_TLS__KEY_FILE": str(files.key),
    }
