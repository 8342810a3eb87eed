"""The SendGrid fake's event-signing key pair for the embedded demo, shared by the app and the fake.

`make run` starts the web process and the sandbox side by side; for the sandbox's signed
"processed"/"delivered" events to pass the app's verification, both must agree on one key pair
without anyone pasting keys. An explicit step writes the pair into var/ before any of them starts
(`manage.py seed_demo`, which `make run` runs before it starts the Procfile's processes;
`manage.py sandbox` does it too when run on its own): the private half for the fake, the public
half in a file the settings only read. Settings never generate anything. Loopback demo only: a
real SendGrid account's key is never generated here (settings turn SANDBOX_SENDGRID_DEMO_EVENTS
off when one is configured).
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def _file_write(path: Path, data: bytes, *, replace: bool) -> None:
    """Write through a private temporary file so no reader ever sees half a key."""
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    partial = Path(name)
    with os.fdopen(handle, "wb") as file:  # mkstemp: mode 0600, a name nobody else has
        file.write(data)
    try:
        if replace:
            partial.replace(path)
        else:
            os.link(partial, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        partial.unlink(missing_ok=True)


def _public_key(pem: bytes, *, path: Path) -> str:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} must hold an EC P-256 private key")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def sandbox_event_keys_ensure(*, private_path: Path, public_path: Path) -> tuple[str, str]:
    """Create the pair once; (private PEM for the fake, base64 DER public key for the app).

    Safe when several processes call it at once: the first private key written wins and every
    caller derives the same public key from it.
    """
    private_path.parent.mkdir(parents=True, exist_ok=True)
    if not private_path.exists():
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _file_write(private_path, pem, replace=False)
    pem = private_path.read_bytes()
    public = _public_key(pem, path=private_path)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    if not public_path.is_file() or public_path.read_text().strip() != public:
        _file_write(public_path, public.encode(), replace=True)
    return pem.decode(), public
