"""Ansible Vault values in inventories, and the wrapper that keeps secrets unprinted.

An inventory may hold a variable as `!vault |` followed by a vault envelope::

    $ANSIBLE_VAULT;1.1;AES256            (1.2 adds ;<vault-id> to the header)
    <hex of: hex(salt) \\n hex(HMAC-SHA256) \\n hex(ciphertext)>, in lines

PBKDF2-HMAC-SHA256 over the vault password and the salt, 10,000 iterations,
yields 80 bytes: the AES-256 key, the HMAC key and the 16-byte counter block.
The HMAC covers the ciphertext and is checked before anything is decrypted; the
plaintext is AES-CTR output with PKCS#7 padding. `ansible-inventory --list`
writes the same envelope as `{"__ansible_vault": "..."}`, which is read too.

Vault passwords come as Ansible users give them: the ids of
`ANSIBLE_VAULT_IDENTITY_LIST` (or ansible.cfg's `vault_identity_list`), then
`--vault-id [label@]FILE`, then `--vault-password-file FILE`, then
`ANSIBLE_VAULT_PASSWORD_FILE` (or ansible.cfg's `vault_password_file`). An executable
file is run and its stdout is the password; one whose name ends in `-client`
(before any extension) is run with `--vault-id LABEL`. Nothing ever prompts:
`prompt` as a password source is refused. Files are read, and scripts run, only
when a vaulted value is first needed, and each only once.

Only AES256, the one cipher Ansible writes, is read.
"""

from __future__ import annotations

import binascii
import logging
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetcompat.errors import InputError, InventoryError

HEADER = "$ANSIBLE_VAULT"
VERSIONS = ("1.1", "1.2")
DEFAULT_LABEL = "default"
log = logging.getLogger(__name__)

SCRIPT_TIMEOUT = 120.0
"""Seconds a password script may take before it is given up."""
SCRIPT_PATIENCE = 5.0
"""Seconds of waiting on a password script before a warning says so."""

_KDF_ITERATIONS = 10_000
_KEY_BYTES = 32
_IV_BYTES = 16
_CLIENT_UNKNOWN_ID = 2  # a -client script's exit status for "no such vault id"


class Secret:
    """A secret string that prints as asterisks: `reveal()` is the only way out."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that must send it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not to be pickled")

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: Any) -> Secret:
        return self


@dataclass(frozen=True)
class Vaulted:
    """A vault envelope as found in an inventory, not yet decrypted."""

    envelope: str
    line: int | None = None

    @property
    def vault_id(self) -> str | None:
        """The vault id a 1.2 header names, else None."""
        fields = self.envelope.lstrip().split("\n", 1)[0].strip().split(";")
        return (fields[3].strip() or None) if len(fields) > 3 else None

    def __repr__(self) -> str:
        return f"Vaulted(vault_id={self.vault_id!r}, line={self.line})"


def vaulted(value: Any) -> Vaulted | None:
    """A value as a Vaulted when it is one (`!vault`, or ansible-inventory's JSON)."""
    if isinstance(value, Vaulted):
        return value
    if isinstance(value, dict) and set(value) == {"__ansible_vault"}:
        envelope = value["__ansible_vault"]
        if isinstance(envelope, str):
            return Vaulted(envelope)
    return None


@dataclass(frozen=True)
class PasswordSource:
    """Where one vault password comes from: a file or a script, and its label.

    `label` is None for `--vault-id FILE` without a label (Ansible then calls it
    "default" but hands a client script no `--vault-id`).
    """

    path: str
    label: str | None

    @property
    def name(self) -> str:
        """The vault id this password answers to."""
        return self.label or DEFAULT_LABEL

    def __str__(self) -> str:
        if self.label and self.label != DEFAULT_LABEL:
            return f"{self.label}@{self.path}"
        return self.path


class Keyring:
    """The vault passwords of a run; read on first need, each at most once."""

    def __init__(self, sources: Sequence[PasswordSource] = ()) -> None:
        self.sources = tuple(sources)
        self._passwords: dict[PasswordSource, bytes | InputError] = {}
        self._plain: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"Keyring({[str(s) for s in self.sources]!r})"

    @classmethod
    def from_options(
        cls,
        vault_ids: Iterable[str] = (),
        password_files: Iterable[str] = (),
        environ: Mapping[str, str] | None = None,
    ) -> Keyring:
        """The keyring Ansible would build from these options and its defaults.

        As Ansible does, the vault ids of ANSIBLE_VAULT_IDENTITY_LIST (or
        ansible.cfg's `vault_identity_list`) come before `vault_ids`, and the
        file of ANSIBLE_VAULT_PASSWORD_FILE (or `vault_password_file`) after
        `password_files`. Raises InputError for a `prompt` source: fleetcompat
        never prompts.
        """
        from fleetcompat.ansiblecfg import vault_defaults

        defaults = vault_defaults(environ)
        ids = [*defaults.identity_list, *vault_ids]
        sources = [_source(slug) for slug in ids]
        files = list(password_files)
        if defaults.password_file:
            files.append(defaults.password_file)
        for path in files:
            if path in ("prompt", "prompt_ask_vault_pass"):
                raise InputError(_NO_PROMPT)
            sources.append(PasswordSource(path, DEFAULT_LABEL))
        return cls(sources)

    def decrypt(self, value: Vaulted) -> str:
        """The plaintext of a vaulted value, as text.

        Tries the passwords labelled with the envelope's vault id first, then the
        others, as Ansible does. Raises InventoryError (without the file, host or
        variable, which the caller adds) when no password is given, none opens
        the envelope, or the envelope is malformed.
        """
        cached = self._plain.get(value.envelope)
        if cached is not None:
            return cached

        salt, mac, ciphertext, vault_id = parse_envelope(value.envelope)
        if not self.sources:
            raise InventoryError(
                "no vault password was given (--vault-password-file, --vault-id "
                "or ANSIBLE_VAULT_PASSWORD_FILE)"
            )
        ordered = [s for s in self.sources if s.name == vault_id]
        ordered += [s for s in self.sources if s not in ordered]
        tried: list[str] = []
        problems: list[str] = []
        for source in ordered:
            password = self._password(source)
            if isinstance(password, InputError):
                problems.append(str(password))
                continue
            tried.append(str(source))
            plain = open_envelope(salt, mac, ciphertext, password)
            if plain is not None:
                text = _text(plain)
                self._plain[value.envelope] = text
                return text
        raise InventoryError(_refusal(tried, problems))

    def _password(self, source: PasswordSource) -> bytes | InputError:
        """One source's password (or why it has none), read once."""
        if source not in self._passwords:
            try:
                self._passwords[source] = read_password(source)
            except InputError as exc:
                self._passwords[source] = exc
        return self._passwords[source]


_NO_PROMPT = (
    "fleetcompat never prompts for a vault password: give a password file "
    "(--vault-password-file FILE or --vault-id LABEL@FILE)"
)


def _source(slug: str) -> PasswordSource:
    """A `--vault-id [label@]FILE` argument as a source."""
    label, at, path = slug.partition("@")
    if not at:
        label, path = "", slug
    if path in ("prompt", "prompt_ask_vault_pass"):
        raise InputError(f"--vault-id {slug}: {_NO_PROMPT}")
    if not path:
        raise InputError(f"--vault-id {slug}: names no password file")
    return PasswordSource(path, label or None)


def _refusal(tried: Sequence[str], problems: Sequence[str]) -> str:
    """Why no vault password opened an envelope, in a user's words."""
    if not tried:
        return "; ".join(problems)
    message = (
        f"cannot be decrypted with the vault password of {', '.join(tried)}: a wrong "
        "password, or the value was altered (HMAC mismatch)"
    )
    if problems:
        message += " (also: " + "; ".join(problems) + ")"
    return message


def _text(plain: bytes) -> str:
    """Decrypted bytes as text."""
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError("vaulted value is not UTF-8 text") from None


def read_password(source: PasswordSource) -> bytes:
    """The password a file holds, or an executable file prints on stdout.

    Raises InputError naming the file when it is missing, unreadable, empty,
    or a script that fails.
    """
    path = Path(source.path).expanduser()
    where = f"vault password file {source.path}"
    if path.is_dir():
        raise InputError(f"{where}: is a directory")
    if not path.exists():
        raise InputError(f"{where}: not found")

    if os.access(path, os.X_OK):
        password = _run_script(path, source, where).strip(b"\r\n")
    else:
        try:
            password = path.read_bytes().strip()
        except OSError as exc:
            raise InputError(f"{where}: cannot read: {exc.strerror or exc}") from None
    if not password:
        raise InputError(f"{where}: holds an empty password")
    return password


def _run_script(path: Path, source: PasswordSource, where: str) -> bytes:
    """Run a password script (`-client` ones with `--vault-id LABEL`); its stdout.

    The path is made absolute first: `pw.sh` names the file here, never a
    program on PATH.
    """
    command = [os.path.abspath(path)]
    client = os.path.splitext(path.name)[0].endswith("-client")
    if client and source.label:
        command += ["--vault-id", source.label]
    try:
        script = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise InputError(
            f"{where}: cannot run it ({exc.strerror or exc}); if it is not a "
            "script, remove its executable bit"
        ) from None
    with script:
        try:
            stdout, stderr = script.communicate(timeout=SCRIPT_PATIENCE)
        except subprocess.TimeoutExpired:
            log.warning(
                "%s: waiting for the script (it may be asking for something no "
                "one will type; at most %gs)",
                where,
                SCRIPT_TIMEOUT,
            )
            try:
                stdout, stderr = script.communicate(
                    timeout=SCRIPT_TIMEOUT - SCRIPT_PATIENCE
                )
            except subprocess.TimeoutExpired:
                script.kill()
                raise InputError(
                    f"{where}: the script did not finish within {SCRIPT_TIMEOUT:g}s"
                ) from None

    if script.returncode != 0:
        said = stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {said[-1][:200]}" if said else ""
        if client and script.returncode == _CLIENT_UNKNOWN_ID:
            return_text = f"knows no password for vault id {source.name!r}"
        else:
            return_text = f"exited with status {script.returncode}"
        raise InputError(f"{where}: the script {return_text}{detail}")
    return stdout


def parse_envelope(envelope: str) -> tuple[bytes, bytes, bytes, str | None]:
    """An envelope's salt, HMAC, ciphertext and vault id.

    Raises InventoryError when it is not a vault envelope Ansible would write.
    """
    lines = envelope.strip().splitlines()
    header = lines[0].strip().split(";") if lines else []
    if len(header) < 3 or header[0].strip() != HEADER:
        raise InventoryError("vaulted value does not start with $ANSIBLE_VAULT;")
    version, cipher = header[1].strip(), header[2].strip()
    if version not in VERSIONS:
        raise InventoryError(f"vault format {version!r} is not known (1.1 or 1.2)")
    if cipher != "AES256":
        raise InventoryError(f"vault cipher {cipher!r} is not supported (AES256)")
    vault_id = (header[3].strip() or None) if len(header) > 3 else None

    try:
        body = binascii.unhexlify("".join(line.strip() for line in lines[1:]))
        salt_hex, mac_hex, data_hex = body.split(b"\n", 2)
        salt = binascii.unhexlify(salt_hex)
        mac = binascii.unhexlify(mac_hex)
        ciphertext = binascii.unhexlify(data_hex)
    except (binascii.Error, ValueError):
        raise InventoryError(
            "vaulted value is damaged (its body is not the hex Ansible writes)"
        ) from None
    return salt, mac, ciphertext, vault_id


def open_envelope(
    salt: bytes, mac: bytes, ciphertext: bytes, password: bytes
) -> bytes | None:
    """The plaintext, or None when the HMAC does not match (wrong password/altered).

    Raises InventoryError when the HMAC matches but the padding is wrong, which
    only a broken encryptor produces.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, hmac, padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    derived = PBKDF2HMAC(
        algorithm=hashes.SHA256(),
        length=2 * _KEY_BYTES + _IV_BYTES,
        salt=salt,
        iterations=_KDF_ITERATIONS,
    ).derive(password)
    cipher_key = derived[:_KEY_BYTES]
    mac_key = derived[_KEY_BYTES : 2 * _KEY_BYTES]
    counter = derived[2 * _KEY_BYTES :]

    check = hmac.HMAC(mac_key, hashes.SHA256())
    check.update(ciphertext)
    try:
        check.verify(mac)
    except InvalidSignature:
        return None

    decryptor = Cipher(algorithms.AES(cipher_key), modes.CTR(counter)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise InventoryError("vaulted value has bad padding") from None
