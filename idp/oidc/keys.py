"""Signing keys: generated on first start, encrypted at rest, rotated without downtime.

Loading a private key costs milliseconds (RSA validation), so keys are parsed once per
process and cached; the cache is refreshed from the database every `REFRESH_SECONDS` so
that a rotation made by another process is picked up.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from joserfc.jwk import ECKey, KeySet, RSAKey

from idp.clock import utcnow
from idp.db import db
from idp.models import SigningKey
from idp.security.encryption import Encryptor
from idp.security.secrets import generate_secret

SUPPORTED_ALGS = ("RS256", "ES256")
REFRESH_SECONDS = 30.0


def generate_jwk(alg: str, kid: str) -> RSAKey | ECKey:
    """A new private key for `alg`."""
    params: Any = {"kid": kid, "alg": alg, "use": "sig"}
    if alg == "RS256":
        return RSAKey.generate_key(2048, parameters=params, private=True)
    if alg == "ES256":
        return ECKey.generate_key("P-256", parameters=params, private=True)
    raise ValueError(f"unsupported signing algorithm {alg}")


def import_private_jwk(data: dict[str, Any]) -> RSAKey | ECKey:
    return RSAKey.import_key(data) if data["kty"] == "RSA" else ECKey.import_key(data)


@dataclass
class _Loaded:
    signing: dict[str, RSAKey | ECKey]
    public: KeySet
    jwks: dict[str, Any]
    loaded_at: float
    # The JWKS document as served (rendered once per key set, not once per request).
    jwks_json: bytes = b""
    # Parsed private keys by kid: a refresh that finds the same keys parses none again.
    parsed: dict[str, RSAKey | ECKey] = field(default_factory=dict)


class KeyStore:
    """Active signing keys per algorithm and the published JWK Set."""

    def __init__(self, encryptor: Encryptor, publish_after_retire: timedelta) -> None:
        self._encryptor = encryptor
        self._publish_after_retire = publish_after_retire
        self._loaded: _Loaded | None = None

    def ensure_keys(self) -> None:
        """Create a key for every supported algorithm that has none (first start)."""
        active = {
            k.alg for k in db.session.scalars(db.select(SigningKey).filter_by(retired_at=None))
        }
        for alg in SUPPORTED_ALGS:
            if alg not in active:
                self._add_key(alg)
        db.session.commit()
        self.invalidate()
        # Decrypt the active keys now: a wrong security.encryption_keys then stops `idp init`
        # and `idp serve` with one line instead of failing every sign-in later.
        self._load()

    def rotate(self, algs: tuple[str, ...] = SUPPORTED_ALGS) -> list[str]:
        """Add a new key per algorithm; old keys stop signing but stay published."""
        now = utcnow()
        for key in db.session.scalars(db.select(SigningKey).filter_by(retired_at=None)):
            if key.alg in algs:
                key.retired_at = now
        kids = [self._add_key(alg) for alg in algs]
        db.session.commit()
        self.invalidate()
        return kids

    def signing_key(self, alg: str) -> RSAKey | ECKey:
        """The current private key for `alg`."""
        loaded = self._load()
        if alg not in loaded.signing:
            raise LookupError(f"no active {alg} signing key: run `idp init`")
        return loaded.signing[alg]

    def public_keys(self) -> KeySet:
        """Every published public key, for verifying our own tokens (id_token_hint)."""
        return self._load().public

    def jwks(self) -> dict[str, Any]:
        """The published JWK Set document."""
        return self._load().jwks

    def jwks_json(self) -> bytes:
        """The published JWK Set document as JSON, rendered once per key set."""
        loaded = self._load()
        if not loaded.jwks_json:
            loaded.jwks_json = json.dumps(loaded.jwks, separators=(",", ":"),
                                          sort_keys=True).encode() + b"\n"
        return loaded.jwks_json

    def invalidate(self) -> None:
        self._loaded = None

    def _add_key(self, alg: str) -> str:
        kid = generate_secret(12)
        private = generate_jwk(alg, kid)
        db.session.add(
            SigningKey(
                kid=kid,
                alg=alg,
                private_jwk_encrypted=self._encryptor.encrypt(
                    json.dumps(private.as_dict(private=True)).encode()
                ),
                public_jwk=private.as_dict(private=False),
            )
        )
        return kid

    def _load(self) -> _Loaded:
        loaded = self._loaded
        if loaded and time.monotonic() - loaded.loaded_at < REFRESH_SECONDS:
            return loaded
        horizon = utcnow() - self._publish_after_retire
        rows = db.session.scalars(
            db.select(SigningKey).order_by(SigningKey.created_at.desc(), SigningKey.id.desc())
        ).all()
        published = [k for k in rows if k.retired_at is None or k.retired_at > horizon]
        signing: dict[str, RSAKey | ECKey] = {}
        known = loaded.parsed if loaded else {}
        parsed: dict[str, RSAKey | ECKey] = {}
        for key in rows:
            if key.retired_at is None and key.alg not in signing:
                # Parsing validates an RSA key (tens of ms): only keys not seen before.
                if key.kid not in known:
                    plain = self._encryptor.decrypt(key.private_jwk_encrypted)
                    known[key.kid] = import_private_jwk(json.loads(plain))
                signing[key.alg] = parsed[key.kid] = known[key.kid]
        jwks: Any = {"keys": [dict(k.public_jwk) for k in published]}
        if loaded and jwks == loaded.jwks:
            public, rendered = loaded.public, loaded.jwks_json
        else:
            public, rendered = KeySet.import_key_set(jwks), b""
        loaded = _Loaded(signing, public, jwks, time.monotonic(), rendered, parsed)
        self._loaded = loaded
        return loaded
