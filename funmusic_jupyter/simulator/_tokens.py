"""Stateless, signed download URLs: the URL itself says which song to make.

A URL looks like the service's OSS links, with one more query field::

    /oss/fun-music/YYYYMMDD/<id>.mp3?song=<token>&Expires=<unix>&OSSAccessKeyId=SIMULATOR
        &Signature=<base64 HMAC-SHA256>

``song`` is the song's ``SongSpec`` as compact JSON, zlib-compressed and base64url-encoded
(lyrics compress well: the longest valid lyrics make a token of a few KB). The signature covers
the method, the expiry, the path and the token, with a secret shared by every process and
instance that is to serve the URL. Synthesis is deterministic, so any of them can make the file
again, byte for byte, when it is not in its cache: no shared store, no sticky sessions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import zlib
from urllib.parse import quote

from ._synthesis import SongSpec

__all__ = ["SECRET_VARIABLE", "SONG_FIELD", "UrlSigner", "new_secret"]

#: Where ``--secret`` defaults from (keeps it out of ``ps``).
SECRET_VARIABLE = "FUNMUSIC_SIMULATOR_SECRET"
SONG_FIELD = "song"
_TOKEN_VERSION = 2  # 2: the spec holds is_instrumental
# A token is at most a few KB; a bigger one is refused before it is decompressed.
_MAX_TOKEN_CHARS = 64 << 10
_MAX_SPEC_BYTES = 1 << 20


def new_secret() -> str:
    """A random secret for one run (URLs then die with the process, as before)."""
    return secrets.token_urlsafe(32)


class UrlSigner:
    """Signs and checks download URLs with one secret."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the URL signing secret must not be empty")
        self._key = secret.encode("utf-8")

    @staticmethod
    def token_for(spec: SongSpec) -> str:
        raw = json.dumps([_TOKEN_VERSION, *spec.to_json()], ensure_ascii=False,
                         separators=(",", ":")).encode("utf-8")
        return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode("ascii").rstrip("=")

    @staticmethod
    def spec_from(token: str) -> SongSpec:
        """The spec a token carries; ``ValueError`` for a token that is not one of ours (only
        called after its signature was checked, so this is a bug or a changed format)."""
        if len(token) > _MAX_TOKEN_CHARS:
            raise ValueError(f"token too long ({len(token)} characters)")
        try:
            packed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            inflater = zlib.decompressobj()
            raw = inflater.decompress(packed, _MAX_SPEC_BYTES)
            value = json.loads(raw.decode("utf-8"))
        except (binascii.Error, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a song token: {exc}") from None
        if not isinstance(value, list) or not value or value[0] != _TOKEN_VERSION:
            raise ValueError(f"not a version {_TOKEN_VERSION} song token")
        return SongSpec.from_json(value[1:])

    def signature(self, path: str, expires: int, token: str) -> str:
        message = f"GET\n{expires}\n{path}\n{token}".encode()
        return base64.b64encode(hmac.new(self._key, message, hashlib.sha256).digest()).decode()

    def signed_query(self, path: str, spec: SongSpec, expires: int) -> str:
        token = self.token_for(spec)
        sig = quote(self.signature(path, expires, token), safe="")
        return (f"{SONG_FIELD}={token}&Expires={expires}&OSSAccessKeyId=SIMULATOR"
                f"&Signature={sig}")

    def check(self, path: str, expires: int, token: str, signature: str) -> bool:
        expected = self.signature(path, expires, token).encode()
        return hmac.compare_digest(expected, signature.encode("utf-8", "replace"))
