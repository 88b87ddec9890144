"""Legacy hashes made by the real libraries, and legacy accounts imported as a portal would."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import argon2
import bcrypt
from passlib.hash import (
    bcrypt as passlib_bcrypt,
)
from passlib.hash import (
    django_pbkdf2_sha1,
    django_pbkdf2_sha256,
    md5_crypt,
    pbkdf2_sha1,
    pbkdf2_sha256,
    pbkdf2_sha512,
    sha256_crypt,
    sha512_crypt,
)

from idp.db import db
from idp.legacy.importer import LegacyImportReport, import_legacy_accounts
from idp.models import LegacyAccount, Portal

# Old systems let agents choose short passwords: today's policy refuses this one.
LEGACY_PASSWORD = "tulip42"


def _salted(algorithm: str, salt_last: bool = False):
    def make(password: str) -> tuple[str, str]:
        salt = secrets.token_hex(8)
        text = password + salt if salt_last else salt + password
        return hashlib.new(algorithm, text.encode("utf-8")).hexdigest(), salt
    return make


def _argon2(kind: argon2.Type):
    def make(password: str) -> tuple[str, None]:
        hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1, type=kind)
        return hasher.hash(password), None
    return make


def _bcrypt(prefix: bytes):
    def make(password: str) -> tuple[str, None]:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, prefix=prefix)).decode(), None
    return make


def _passlib(handler: Any):
    def make(password: str) -> tuple[str, None]:
        return handler.hash(password), None
    return make


# scheme name stored on the account -> a function making (hash, salt) with the real library.
MAKERS = {
    "bcrypt-2a": ("bcrypt", _bcrypt(b"2a")),
    "bcrypt-2b": ("bcrypt", _bcrypt(b"2b")),
    # PHP's password_hash() writes $2y$; the `bcrypt` package cannot, passlib can.
    "bcrypt-2y": ("bcrypt", _passlib(passlib_bcrypt.using(ident="2y", rounds=4))),
    "django-pbkdf2-sha256": ("django_pbkdf2_sha256",
                             _passlib(django_pbkdf2_sha256.using(rounds=1000))),
    "django-pbkdf2-sha1": ("django_pbkdf2_sha1", _passlib(django_pbkdf2_sha1.using(rounds=1000))),
    "passlib-pbkdf2-sha256": ("pbkdf2_sha256", _passlib(pbkdf2_sha256.using(rounds=1000))),
    "passlib-pbkdf2-sha512": ("pbkdf2_sha512", _passlib(pbkdf2_sha512.using(rounds=1000))),
    "passlib-pbkdf2-sha1": ("pbkdf2_sha1", _passlib(pbkdf2_sha1.using(rounds=1000))),
    "sha512-crypt": ("sha512_crypt", _passlib(sha512_crypt.using(rounds=5000))),
    "sha256-crypt": ("sha256_crypt", _passlib(sha256_crypt.using(rounds=5000))),
    "md5-crypt": ("md5_crypt", _passlib(md5_crypt)),
    "argon2id": ("argon2", _argon2(argon2.Type.ID)),
    "argon2i": ("argon2", _argon2(argon2.Type.I)),
    "salted-sha1": ("salted_sha1", _salted("sha1")),
    "salted-sha256": ("salted_sha256", _salted("sha256")),
}


def legacy_hash(kind: str = "bcrypt-2b", password: str = LEGACY_PASSWORD) -> tuple[str, str | None]:
    """(hash, salt) of `password` in the format `kind` (a key of MAKERS)."""
    return MAKERS[kind][1](password)


def legacy_row(username: str, email: str | None = None, kind: str = "bcrypt-2b",
               password: str | None = LEGACY_PASSWORD, **columns: str) -> dict[str, str]:
    """One CSV row of a legacy account (as a dict); `password=None`: no password yet."""
    password_hash, salt = legacy_hash(kind, password) if password is not None else ("", None)
    row = {"legacy_username": username, "email": email or "", "name": "", "phone": "",
           "contact_id": "", "password_hash": password_hash, "salt": salt or ""}
    row.update(columns)
    return row


def import_rows(portal: Portal, *rows: dict[str, str]) -> LegacyImportReport:
    """Import `rows` into `portal` as the CLI would (line numbers from 2)."""
    return import_legacy_accounts(portal, enumerate(rows, start=2))


def account(portal: Portal, username: str) -> LegacyAccount:
    db.session.expire_all()
    return db.session.execute(
        db.select(LegacyAccount).filter_by(portal_id=portal.id,
                                           username_key=username.strip().casefold())
    ).scalar_one()
