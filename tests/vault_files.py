"""Ansible Vault files for tests: text encrypted as `ansible-vault encrypt` writes it.

Vault 1.1 with AES256: PBKDF2-HMAC-SHA256 (10,000 rounds) over the password and
a random 32-byte salt gives the AES key, the HMAC key and the counter block; the
PKCS#7-padded text is AES-CTR encrypted and the HMAC-SHA256 of the ciphertext
is kept. fleetcompat's decryption is checked against Ansible's own vectors in
test_vault.py; this writes new files in the same format.
"""

from __future__ import annotations

import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, hmac, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from fleetcompat.vault import Keyring


def encrypt(text: str, password: str) -> str:
    """`text` as a vault 1.1 envelope, lines of 80 hex digits."""
    salt = os.urandom(32)
    derived = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=80, salt=salt, iterations=10_000
    ).derive(password.encode())
    padder = padding.PKCS7(128).padder()
    padded = padder.update(text.encode()) + padder.finalize()
    encryptor = Cipher(
        algorithms.AES(derived[:32]), modes.CTR(derived[64:])
    ).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = hmac.HMAC(derived[32:64], hashes.SHA256())
    mac.update(ciphertext)

    body = b"\n".join(
        binascii.hexlify(part) for part in (salt, mac.finalize(), ciphertext)
    )
    hexed = binascii.hexlify(body).decode()
    lines = [hexed[i : i + 80] for i in range(0, len(hexed), 80)]
    return "\n".join(["$ANSIBLE_VAULT;1.1;AES256", *lines]) + "\n"


def keyring_for(directory: Path, password: str) -> Keyring:
    """A keyring holding one password, from a password file in `directory`."""
    path = directory / "vault-pass"
    path.write_text(password + "\n")
    return Keyring.from_options(password_files=[str(path)], environ={})
