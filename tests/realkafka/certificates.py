"""A self-signed certificate for a broker on 127.0.0.1, made with the JDK's keytool."""

from __future__ import annotations

import subprocess
from pathlib import Path


def broker_keystore(folder: Path, password: str) -> tuple[Path, Path]:
    """A PKCS#12 keystore for the broker and the same certificate as PEM, for clients to trust."""
    keystore, certificate = folder / "broker.p12", folder / "broker.pem"
    subprocess.run(
        [
            "keytool",
            "-genkeypair",
            "-alias",
            "broker",
            "-keyalg",
            "RSA",
            "-keysize",
            "2048",
            "-validity",
            "2",
            "-dname",
            "CN=localhost",
            "-ext",
            "SAN=ip:127.0.0.1,dns:localhost",
            "-storetype",
            "PKCS12",
            "-keystore",
            str(keystore),
            "-storepass",
            password,
            "-keypass",
            password,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [
            "keytool",
            "-exportcert",
            "-rfc",
            "-alias",
            "broker",
            "-keystore",
            str(keystore),
            "-storepass",
            password,
            "-file",
            str(certificate),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return keystore, certificate
