"""A software WebAuthn authenticator and client for HTTP-level tests.

It makes what a browser returns from navigator.credentials.create() and .get(), in the JSON
form static/webauthn.js sends: a P-256 key from `cryptography`, authenticator data laid out
as WebAuthn L2 6.1 says, a "none" attestation object and COSE key in CBOR, and a real ECDSA
signature over authenticatorData || SHA-256(clientDataJSON). py_webauthn then verifies it
exactly as it verifies a browser's.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.driver import b64url

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40
OPTIONS = re.compile(r'data-webauthn-options="([^"]*)"')


def options_on(page_html: str) -> dict[str, Any]:
    """The WebAuthn options a hosted page carries for static/webauthn.js."""
    found = OPTIONS.search(page_html)
    assert found, "no WebAuthn options on the page"
    return dict(json.loads(html.unescape(found.group(1))))


def _unb64url(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass
class SoftAuthenticator:
    """One credential on one authenticator (a passkey, or a security key)."""

    origin: str
    rp_id: str
    backup_eligible: bool = False  # a synced passkey (WebAuthn L3 "backup eligible")
    verifies_user: bool = True  # a PIN or biometric is checked
    keeps_counter: bool = True
    transports: list[str] = field(default_factory=lambda: ["internal"])
    aaguid: bytes = bytes.fromhex("01020304050607080910111213141516")
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0
    user_handle: bytes | None = None

    def _flags(self, attested: bool = False, user_verified: bool | None = None) -> bytes:
        verified = self.verifies_user if user_verified is None else user_verified
        value = UP | (UV if verified else 0) | (AT if attested else 0)
        if self.backup_eligible:
            value |= BE | BS
        return bytes([value])

    def cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge,
                           "origin": origin or self.origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any], origin: str | None = None,
               rp_id: str | None = None) -> str:
        """navigator.credentials.create() with `options` from the page: the JSON response."""
        self.user_handle = _unb64url(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        count = self.sign_count if self.keeps_counter else 0
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest()
                     + self._flags(attested=True) + count.to_bytes(4, "big") + self.aaguid
                     + len(self.credential_id).to_bytes(2, "big") + self.credential_id
                     + self.cose_key())
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({
            "id": b64url(self.credential_id), "rawId": b64url(self.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
            "response": {"clientDataJSON": b64url(client_data),
                         "attestationObject": b64url(attestation),
                         "transports": self.transports},
        })

    def get(self, options: dict[str, Any], origin: str | None = None, rp_id: str | None = None,
            user_verified: bool | None = None, sign_count: int | None = None) -> str:
        """navigator.credentials.get() with `options` from the page: the JSON response."""
        if sign_count is not None:
            self.sign_count = sign_count
        elif self.keeps_counter:
            self.sign_count += 1
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (hashlib.sha256((rp_id or self.rp_id).encode()).digest()
                     + self._flags(user_verified=user_verified)
                     + self.sign_count.to_bytes(4, "big"))
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        response = {"clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data), "signature": b64url(signature)}
        if self.user_handle is not None:
            response["userHandle"] = b64url(self.user_handle)
        return json.dumps({
            "id": b64url(self.credential_id), "rawId": b64url(self.credential_id),
            "type": "public-key", "authenticatorAttachment": "platform",
            "clientExtensionResults": {}, "response": response,
        })
