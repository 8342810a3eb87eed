"""The SendGrid fake's event-signing key for the embedded demo, shared by the app and the fake.

`make run` starts the web process and the sandbox separately; for the sandbox's signed
"processed"/"delivered" events to pass the app's verification, both must agree on one key pair
without anyone pasting keys. In DEBUG, with SendGrid pointed at the sandbox and no key configured,
settings read the pair from var/ (created once, atomically: the first process to start writes it,
the others read it). Loopback demo only: a real SendGrid account's key is never generated here.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

FILE_NAME = "sandbox_sendgrid_events.pem"


def _create(path: Path) -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    partial = Path(name)
    with os.fdopen(handle, "wb") as file:  # mkstemp: mode 0600, a name nobody else has
        file.write(pem)
    try:
        os.link(partial, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        partial.unlink()


def sandbox_event_keys(var_dir: Path) -> tuple[str, str]:
    """(private PEM for the fake, base64 DER public key for the app's verification setting)."""
    path = var_dir / FILE_NAME
    if not path.exists():
        _create(path)
    pem = path.read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} must hold an EC P-256 private key")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode(), base64.b64encode(der).decode()
