"""Encryption key rotation: re-encrypt every stored secret under the first key.

The procedure (docs/operations.md), with no downtime at any step:

1. Put a new key first in `security.encryption_keys`, keep the old one after it, deploy to
   every node. New secrets are encrypted with the new key; old ones still decrypt.
2. Run `idp keys rotate-encryption` once (any node): it re-encrypts what the old keys
   encrypted. It can run while the IdP serves, and again: it skips what is current.
3. Remove the old key from the list and deploy again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from idp.db import db
from idp.models import MfaMethod, SigningKey
from idp.security.encryption import Encryptor

# Every column holding Fernet ciphertext made with `security.encryption_keys`.
ENCRYPTED_COLUMNS: tuple[tuple[Any, str], ...] = (
    (SigningKey, "private_jwk_encrypted"),  # signing keys' private halves
    (MfaMethod, "secret_encrypted"),  # authenticator-app (TOTP) seeds
)
BATCH = 500


@dataclass
class RotationReport:
    """How many stored secrets were re-encrypted, and how many were already current."""

    reencrypted: int = 0
    current: int = 0


def reencrypt_stored_secrets(encryptor: Encryptor, batch: int = BATCH) -> RotationReport:
    """Re-encrypt under the first key every secret that only an older key decrypts.

    Works in batches, each in its own transaction, and writes a row only if its ciphertext
    is still the one read: a secret changed meanwhile by a request (a person enrolling a
    new authenticator app) is left as that request wrote it, under the new key already.
    """
    report = RotationReport()
    for model, name in ENCRYPTED_COLUMNS:
        column = getattr(model, name)
        last_id = 0
        while True:
            rows = db.session.execute(
                select(model.id, column).where(model.id > last_id, column.is_not(None))
                .order_by(model.id).limit(batch)
            ).all()
            if not rows:
                break
            for row_id, ciphertext in rows:
                if encryptor.is_current(ciphertext):
                    report.current += 1
                    continue
                result = db.session.execute(
                    update(model).where(model.id == row_id, column == ciphertext)
                    .values({name: encryptor.rotate(ciphertext)})
                )
                report.reencrypted += result.rowcount  # type: ignore[attr-defined]
            db.session.commit()
            last_id = rows[-1][0]
    return report
