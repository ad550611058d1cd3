"""TLS for the agents' control API: a private CA per inventory, certificates it signs, ssl contexts.

    python -m simulator.orchestration.tls --dir DIR --agent NAME --san 10.0.0.5 [--san agent-1]   # one agent host
    python -m simulator.orchestration.tls --dir DIR --controller                                   # the controller

The CA (``ca.pem``, ``ca.key``) is made once in DIR, on the control node, next to the inventory's
other generated secrets (``.cache/secrets/<inventory>/tls``, git-ignored); every later call reuses it.
Each agent host gets a server certificate (``agent-<name>.pem``/``.key``) whose subjectAltName is the
address the controller dials, and the controller a client certificate (``controller.pem``/``.key``):
the agent requires it (mutual TLS), so only a holder of a CA-signed client key can even send a
request, and the bearer token is checked on top. A certificate is issued again when it is missing,
not signed by the current CA, its names differ from the ones asked for, or it expires within
RENEW_DAYS; deleting DIR rotates everything (docs/simulator.md "Control API security").

Generation needs ``cryptography`` (the control node's virtualenv has it); the ssl contexts need only
the standard library, so agent hosts install nothing extra. The CLI prints ``changed`` when it wrote
anything, for Ansible's changed_when.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import ipaddress
import os
import ssl
import sys
from pathlib import Path

CA_DAYS = 3650
CERT_DAYS = 825
RENEW_DAYS = 30


def _write_private(path: Path, data: bytes) -> None:
    """Create the key file 0600 from the start (no window where it is readable by others)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(cn: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IoT burst pilot"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def ensure_ca(directory: Path) -> bool:
    """Make the CA in ``directory`` unless it is there; True when it was made."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    cert_path, key_path = directory / "ca.pem", directory / "ca.key"
    if cert_path.exists() and key_path.exists():
        return False
    key = _key()
    now = dt.datetime.now(dt.UTC)
    name = _name(f"iot-burst agents CA {os.urandom(4).hex()}")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _pem_key(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def _sans(names: list[str]):
    from cryptography import x509

    out = []
    for n in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


def _still_good(cert_path: Path, key_path: Path, ca, sans: list[str] | None) -> bool:
    """The certificate is signed by this CA, carries exactly these names and is not about to expire."""
    from cryptography import x509

    if not (cert_path.exists() and key_path.exists()):
        return False
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca)
    except Exception:  # an unreadable or foreign certificate: issue a new one
        return False
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=RENEW_DAYS):
        return False
    if sans is not None:
        try:
            have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return False
        if {str(g.value) for g in have} != {str(g.value) for g in _sans(sans)}:
            return False
    return True


def ensure_cert(directory: Path, stem: str, cn: str, sans: list[str] | None, client: bool) -> bool:
    """Issue ``<stem>.pem``/``.key`` from the CA in ``directory`` unless a good one is there."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    ca_cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    if _still_good(cert_path, key_path, ca_cert, sans):
        return False
    key = _key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # one purpose per certificate: an agent's server key cannot act as the controller
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(sans)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_private(key_path, _pem_key(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def server_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """The agent's side: TLS 1.2+, its certificate; with ``client_ca`` a client certificate signed by
    that CA is required (mutual TLS), so a peer without one is refused in the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if client_ca:
        ctx.load_verify_locations(client_ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(ca: str, cert: str | None = None, key: str | None = None) -> ssl.SSLContext:
    """The controller's side: trusts only the inventory's CA (not the system store) and checks the
    agent's name against the address it dials; presents its client certificate when given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(ca)
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m simulator.orchestration.tls", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--dir", required=True, type=Path, help="where the CA and certificates live")
    p.add_argument("--agent", help="issue agent-<NAME>.pem/.key (a server certificate)")
    p.add_argument("--san", action="append", default=[], help="address or DNS name (repeat)")
    p.add_argument("--controller", action="store_true", help="issue controller.pem/.key (client)")
    args = p.parse_args(argv)
    if args.agent and not args.san:
        p.error("--agent needs at least one --san (the address the controller dials)")
    args.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Ansible runs this once per agent host at the same time: one CA, not one per racing process.
    with open(args.dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        changed = ensure_ca(args.dir)
        if args.agent:
            changed |= ensure_cert(args.dir, f"agent-{args.agent}", args.agent, args.san, client=False)
        if args.controller:
            changed |= ensure_cert(args.dir, "controller", "iot-burst controller", None, client=True)
    print("changed" if changed else "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
