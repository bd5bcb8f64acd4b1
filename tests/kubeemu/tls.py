"""
Test certificates: a throw-away CA and a serving certificate it signed.

Admission webhooks are called over HTTPS and the API server verifies the
webhook's certificate against ``clientConfig.caBundle``. Tests that run a real
webhook server (the operator's, or a fidelity peer) need both halves::

    from kubeemu.tls import make_ca_and_cert
    ca_pem, cert_path, key_path = make_ca_and_cert(tmp_path, ['127.0.0.1', 'localhost'])
    # serve with cert_path/key_path; register the configuration with
    # clientConfig.caBundle = base64.b64encode(ca_pem).decode()

Hosts that parse as IP addresses become IP SANs, the rest DNS SANs; the first
host is also the subject's common name. Keys are EC P-256 (fast to generate).
"""
from __future__ import annotations

import datetime
import ipaddress
import pathlib
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_ca_and_cert(directory: str | pathlib.Path, hosts: Sequence[str] = ('127.0.0.1', 'localhost'),
                     *, days: int = 2, cert_name: str = 'tls.crt', key_name: str = 'tls.key',
                     ) -> tuple[bytes, pathlib.Path, pathlib.Path]:
    """Make a CA and a serving cert for ``hosts``; write ``tls.crt``/``tls.key`` (and ``ca.crt``) to ``directory``.

    Returns ``(ca_pem, cert_path, key_path)``: the CA certificate as PEM bytes (what goes,
    base64-encoded, into ``clientConfig.caBundle``) and the paths of the serving certificate
    and its unencrypted private key (the names Kubernetes TLS secrets and Kopf use).
    """
    if not hosts:
        raise ValueError('at least one host is needed for the serving certificate')
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name('kubeemu test CA')
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0])).issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / cert_name, directory / key_name
    (directory / 'ca.crt').write_bytes(ca_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    return ca_pem, cert_path, key_path
