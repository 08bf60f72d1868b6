"""The client certificate a connection presents to its token endpoint (mutual TLS, RFC 8705).

``client_cert`` is PEM text or a path; the key is a path in ``client_key`` or PEM text in
``client_private_key`` (a name Airflow masks in its UI, API and logs, as it masks every
``private_key``; it shows ``client_key`` in clear, so PEM text there is refused). Both HTTP clients
read certificates from files: PEM text is written once per process to a file only its user can read,
in a directory only its user can open, removed when the process exits. The certificate and the key are
checked to load and to belong together before any request.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from typing import TYPE_CHECKING

from airflow_tokens.assertion import load_private_key, read_certificate, same_public_key
from airflow_tokens.request import ClientCertificate

if TYPE_CHECKING:
    from airflow_tokens.connection import ConnectionSettings

_PEM_START = "-----BEGIN "
_lock = threading.Lock()
_directory: list[str] = []


def _private_file(name: str, data: bytes) -> str:
    """Write ``data`` to ``name`` in this process's private directory (once) and return its path."""
    with _lock:
        if not _directory:
            path = tempfile.mkdtemp(prefix="airflow-tokens-tls-")  # mode 0700
            atexit.register(shutil.rmtree, path, ignore_errors=True)
            _directory.append(path)
        target = os.path.join(_directory[0], name)
        if not os.path.exists(target):
            descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
    return target


def client_certificate(settings: ConnectionSettings) -> ClientCertificate | None:
    """Return the connection's client certificate, checked, or None when it has none."""
    from cryptography.hazmat.primitives import serialization

    cert_value = settings.extra("client_cert", str, "").strip()
    key_path = settings.extra("client_key", str, "").strip()
    key_text = settings.extra("client_private_key", str, "").strip()
    if not (cert_value or key_path or key_text):
        return None
    if not cert_value:
        raise settings.error("client_cert", "is missing: a client key needs its certificate")
    if key_path.startswith(_PEM_START):
        raise settings.error(
            "client_key",
            "holds PEM text, which Airflow shows in clear under this name; move it to "
            "client_private_key, or give the key file's path here",
        )
    pem, cert_path, certificate = read_certificate(settings, "client_cert")
    if not (key_path or key_text):
        raise settings.error(
            "client_key", "is missing: give the key file's path here, or its PEM text in client_private_key"
        )
    key_field = "client_key" if key_path else "client_private_key"
    if key_path and key_text:
        raise settings.error("client_private_key", "is set together with client_key; keep one")
    key = load_private_key(settings, "client_private_key", "client_key", "", passphrase_field=None)
    if not same_public_key(key, certificate):
        raise settings.error(key_field, "does not belong to client_cert (its public key differs)")
    key_der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cert_der = certificate.public_bytes(serialization.Encoding.DER)
    digest = hashlib.sha256(b"airflow-tokens/client-cert\0" + cert_der + b"\0" + key_der).hexdigest()
    if cert_path is None:
        cert_path = _private_file(f"{digest[:32]}-cert.pem", pem)
    if key_path:
        key_file = os.path.expanduser(key_path)
    else:
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        key_file = _private_file(f"{digest[:32]}-key.pem", key_pem)
    return ClientCertificate(cert_path, key_file, digest)
