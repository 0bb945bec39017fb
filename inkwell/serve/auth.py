"""API keys: kept only as SHA-256 hashes, checked in constant time, identified in logs by an id.

    inkwell serve --api-key sk-local-123              # one key; its id is key-<first 8 hex of its hash>
    inkwell serve --api-keys-file keys.txt            # one key per line: `ID KEY`, `ID sha256:HEX`, or `KEY`

A `sha256:HEX` line means the file itself never holds the key. Lines starting with # are comments.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from inkwell.errors import InkwellError
from inkwell.files import read_text
from inkwell.serve.errors import unauthorized


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class ApiKey:
    id: str  # what the logs and the store record; never the key
    digest: bytes


class KeyRing:
    """The keys a server accepts. Empty: the server is open (then every request's key id is None)."""

    def __init__(self, keys: list[ApiKey] | None = None):
        self.keys = list(keys or [])
        ids = [k.id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise InkwellError("two API keys share one id", field="api-keys-file", hint="give each line its own ID")

    @classmethod
    def build(cls, keys: list[str] | None = None, keys_file: str | Path | None = None) -> KeyRing:
        ring = [ApiKey(_default_id(hash_key(k)), hash_key(k)) for k in keys or [] if k]
        if keys_file:
            ring += read_keys_file(Path(keys_file))
        return cls(ring)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def check(self, authorization: str | None) -> str | None:
        """The key id for an `Authorization: Bearer KEY` header; raises a 401 APIError otherwise."""
        if not self.enabled:
            return None
        if not authorization:
            raise unauthorized("Missing API key: send it as 'Authorization: Bearer YOUR_KEY'.")
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("Malformed Authorization header: use 'Authorization: Bearer YOUR_KEY'.")
        digest = hash_key(token.strip())
        found = None
        for key in self.keys:  # look at every key, so the time taken does not say which one came close
            if hmac.compare_digest(digest, key.digest):
                found = key.id
        if found is None:
            raise unauthorized("Incorrect API key provided.")
        return found


def _default_id(digest: bytes) -> str:
    return "key-" + digest.hex()[:8]


def read_keys_file(path: Path) -> list[ApiKey]:
    if not path.is_file():
        raise InkwellError(f"API keys file not found: {path}", field="api-keys-file")
    keys: list[ApiKey] = []
    for number, line in enumerate(read_text(path, field="api-keys-file").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) > 2:
            raise InkwellError(f"{path}:{number}: expected `ID KEY`, `ID sha256:HEX` or `KEY`", field="api-keys-file")
        secret = parts[-1]
        if secret.startswith("sha256:"):
            try:
                digest = bytes.fromhex(secret[7:])
            except ValueError:
                digest = b""
            if len(digest) != 32:
                raise InkwellError(f"{path}:{number}: sha256: must be followed by 64 hex digits", field="api-keys-file")
        else:
            digest = hash_key(secret)
        keys.append(ApiKey(parts[0] if len(parts) == 2 else _default_id(digest), digest))
    if not keys:
        raise InkwellError(f"API keys file {path} holds no keys", field="api-keys-file")
    return keys
