"""Password hashes as they come out of portals' previous systems: detect, check, verify.

Legacy accounts (issue 4) arrive with the hash their old system stored. Each is verified
with a maintained implementation of its scheme, never with code of our own, and replaced
by an argon2id hash the first time it verifies (`idp.legacy.signin`). The schemes, by the
name stored in `LegacyAccount.password_scheme`:

===========================  =====================================  ==========================
scheme                       looks like                             verified with
===========================  =====================================  ==========================
bcrypt                       ``$2a$`` / ``$2b$`` / ``$2y$``         ``bcrypt`` (first 72 bytes)
django_pbkdf2_sha256 / _sha1 ``pbkdf2_sha256$ITER$SALT$BASE64``     ``hashlib.pbkdf2_hmac``
pbkdf2_sha256 / _sha512      ``$pbkdf2-sha256$ITER$SALT$CHECKSUM``  passlib (``libpass``)
pbkdf2_sha1                  ``$pbkdf2$ITER$SALT$CHECKSUM``         passlib (``libpass``)
sha512_crypt / sha256_crypt  ``$6$...`` / ``$5$...``                passlib (``libpass``)
md5_crypt                    ``$1$SALT$...``                        passlib (``libpass``)
argon2                       ``$argon2id$`` / ``$argon2i$`` / d     ``argon2-cffi``
salted_sha1 / salted_sha256  hex digest + a ``salt`` column         ``hashlib``
===========================  =====================================  ==========================

Salted SHA (the one format with no self-describing string): the digest is
``hex(SHA(salt + password))`` where salt and password are UTF-8 text exactly as in the file
(the salt is not hex- or base64-decoded); hex digits in either case. The digest's length
tells SHA-1 (40) from SHA-256 (64). Systems that appended the salt instead say so in the
file's ``scheme`` column: ``salted_sha1_salt_last`` / ``salted_sha256_salt_last``
(``hex(SHA(password + salt))``). A hex digest without a salt (unsalted SHA or MD5) is
refused: it is not a password hash worth carrying over.

Costs are capped at import (bcrypt 14, PBKDF2 2,000,000 iterations, crypt 1,000,000
rounds, argon2 256 MiB / t=10), so one imported row cannot make a sign-in take seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError
from passlib.hash import (
    md5_crypt,
    pbkdf2_sha1,
    pbkdf2_sha256,
    pbkdf2_sha512,
    sha256_crypt,
    sha512_crypt,
)

SALTED_SHA = {
    "salted_sha1": ("sha1", False),
    "salted_sha256": ("sha256", False),
    "salted_sha1_salt_last": ("sha1", True),
    "salted_sha256_salt_last": ("sha256", True),
}
SCHEMES = (
    "bcrypt",
    "django_pbkdf2_sha256",
    "django_pbkdf2_sha1",
    "pbkdf2_sha256",
    "pbkdf2_sha512",
    "pbkdf2_sha1",
    "sha512_crypt",
    "sha256_crypt",
    "md5_crypt",
    "argon2",
    *SALTED_SHA,
)
MAX_HASH_LENGTH = 512
MAX_SALT_LENGTH = 255
MAX_BCRYPT_COST = 14
MAX_PBKDF2_ITERATIONS = 2_000_000
MAX_CRYPT_ROUNDS = 1_000_000
MAX_ARGON2_MEMORY_KIB = 262_144
MAX_ARGON2_TIME = 10
BCRYPT_MAX_BYTES = 72  # bcrypt reads no further; every implementation truncated here

_B64 = r"[A-Za-z0-9+/]"
_AB64 = r"[./A-Za-z0-9]"
_PATTERNS: dict[str, re.Pattern[str]] = {
    "bcrypt": re.compile(r"^\$2[aby]\$(?P<cost>\d\d)\$[./A-Za-z0-9]{53}$"),
    "django_pbkdf2_sha256": re.compile(
        rf"^pbkdf2_sha256\$(?P<cost>\d{{1,9}})\$[^$\s]{{1,128}}\${_B64}{{43}}=$"),
    "django_pbkdf2_sha1": re.compile(
        rf"^pbkdf2_sha1\$(?P<cost>\d{{1,9}})\$[^$\s]{{1,128}}\${_B64}{{27}}=$"),
    "pbkdf2_sha256": re.compile(
        rf"^\$pbkdf2-sha256\$(?P<cost>\d{{1,9}})\${_AB64}{{0,1024}}\${_AB64}{{43}}$"),
    "pbkdf2_sha512": re.compile(
        rf"^\$pbkdf2-sha512\$(?P<cost>\d{{1,9}})\${_AB64}{{0,1024}}\${_AB64}{{86}}$"),
    "pbkdf2_sha1": re.compile(
        rf"^\$pbkdf2\$(?P<cost>\d{{1,9}})\${_AB64}{{0,1024}}\${_AB64}{{27}}$"),
    "sha512_crypt": re.compile(
        rf"^\$6\$(rounds=(?P<cost>\d{{1,9}})\$)?[^$:\s]{{0,16}}\${_AB64}{{86}}$"),
    "sha256_crypt": re.compile(
        rf"^\$5\$(rounds=(?P<cost>\d{{1,9}})\$)?[^$:\s]{{0,16}}\${_AB64}{{43}}$"),
    "md5_crypt": re.compile(rf"^\$1\$[^$:\s]{{0,8}}\${_AB64}{{22}}$"),
    "argon2": re.compile(
        rf"^\$argon2(id|i|d)\$(v=\d+\$)?m=(?P<memory>\d{{1,9}}),t=(?P<cost>\d{{1,9}}),"
        rf"p=\d{{1,3}}\${_B64}+\${_B64}+$"),
}
_HEX = re.compile(r"^[0-9a-fA-F]+$")
_CAPS = {
    "bcrypt": MAX_BCRYPT_COST,
    "django_pbkdf2_sha256": MAX_PBKDF2_ITERATIONS,
    "django_pbkdf2_sha1": MAX_PBKDF2_ITERATIONS,
    "pbkdf2_sha256": MAX_PBKDF2_ITERATIONS,
    "pbkdf2_sha512": MAX_PBKDF2_ITERATIONS,
    "pbkdf2_sha1": MAX_PBKDF2_ITERATIONS,
    "sha512_crypt": MAX_CRYPT_ROUNDS,
    "sha256_crypt": MAX_CRYPT_ROUNDS,
    "argon2": MAX_ARGON2_TIME,
}


class LegacyHashError(ValueError):
    """A hash that is not in an accepted format; the message says what was expected."""


def detect_scheme(password_hash: str, salt: str | None = None, hint: str | None = None) -> str:
    """The scheme of `password_hash` (checked for shape and cost), or LegacyHashError.

    `hint` is the file's optional `scheme` column: needed only to say that a salted SHA
    digest has its salt after the password; for every other format it must agree.
    """
    value = password_hash.strip()
    salt = salt or None
    hint = (hint or "").strip().lower() or None
    if hint is not None and hint not in SCHEMES:
        raise LegacyHashError(f"scheme: unknown scheme {hint!r} (one of {', '.join(SCHEMES)})")
    if len(value) > MAX_HASH_LENGTH:
        raise LegacyHashError(f"password_hash: longer than {MAX_HASH_LENGTH} characters")
    if salt is not None and len(salt) > MAX_SALT_LENGTH:
        raise LegacyHashError(f"salt: longer than {MAX_SALT_LENGTH} characters")
    if _HEX.match(value) and len(value) in (40, 64):
        return _salted_sha_scheme(value, salt, hint)
    for scheme, pattern in _PATTERNS.items():
        match = pattern.match(value)
        if match is None:
            continue
        if hint is not None and hint != scheme:
            raise LegacyHashError(f"scheme: {hint!r} does not match a {scheme} hash")
        if salt is not None:
            raise LegacyHashError(f"salt: a {scheme} hash carries its own salt; "
                                  "leave the salt column empty")
        _check_cost(scheme, match)
        return scheme
    raise LegacyHashError(f"password_hash: unknown hash format {_preview(value)} (accepted: "
                          "bcrypt, Django or passlib PBKDF2, SHA-512/SHA-256-crypt, MD5-crypt, "
                          "argon2, salted SHA-1/SHA-256 hex with a salt column)")


def _salted_sha_scheme(value: str, salt: str | None, hint: str | None) -> str:
    algorithm = "sha1" if len(value) == 40 else "sha256"
    if salt is None:
        raise LegacyHashError(f"salt: a {algorithm.upper()} hex digest needs its salt in the "
                              "salt column (unsalted digests are not accepted)")
    if hint is None:
        return f"salted_{algorithm}"
    if hint not in SALTED_SHA:
        raise LegacyHashError(f"scheme: {hint!r} does not match a salted SHA hex digest")
    if SALTED_SHA[hint][0] != algorithm:
        raise LegacyHashError(f"scheme: {hint!r} does not match a {len(value)}-digit digest "
                              f"({algorithm.upper()})")
    return hint


def _check_cost(scheme: str, match: re.Match[str]) -> None:
    cap = _CAPS.get(scheme)
    cost = match.groupdict().get("cost")
    if cap is not None and cost is not None and int(cost) > cap:
        raise LegacyHashError(f"password_hash: {scheme} cost {int(cost)} is above {cap}, "
                              "too slow to verify at sign-in")
    if scheme == "bcrypt" and cost is not None and int(cost) < 4:
        raise LegacyHashError("password_hash: bcrypt cost below 4 is not valid")
    memory = match.groupdict().get("memory")
    if memory is not None and int(memory) > MAX_ARGON2_MEMORY_KIB:
        raise LegacyHashError(f"password_hash: argon2 memory {memory} KiB is above "
                              f"{MAX_ARGON2_MEMORY_KIB}, too much to verify at sign-in")


def _preview(value: str) -> str:
    """The identifier of an unrecognised hash (`$9$...`), or three characters: enough to
    tell formats apart, never a whole password someone put in the hash column."""
    if value.startswith("$"):
        head = "$" + value[1:].partition("$")[0][:10] + "$"
    else:
        head = value[:3]
    return repr(head + "...")


# -- verification ----------------------------------------------------------------------------


def verify_legacy(scheme: str, password_hash: str, salt: str | None, password: str) -> bool:
    """True when `password` matches; False for a mismatch or a hash the library refuses."""
    check = _VERIFIERS.get(scheme)
    if check is None:
        return False
    try:
        return check(password_hash.strip(), salt or "", password)
    except (ValueError, TypeError, Argon2Error, InvalidHashError):
        return False


def _bcrypt(stored: str, _salt: str, password: str) -> bool:
    return bcrypt.checkpw(password.encode("utf-8")[:BCRYPT_MAX_BYTES], stored.encode("ascii"))


def _django_pbkdf2(algorithm: str) -> Callable[[str, str, str], bool]:
    def check(stored: str, _salt: str, password: str) -> bool:
        # Django's own encoding (django.contrib.auth.hashers.PBKDF2PasswordHasher):
        # "<algorithm>$<iterations>$<salt>$<base64 of pbkdf2_hmac(sha, password, salt)>".
        _, iterations, salt, expected = stored.split("$", 3)
        digest = hashlib.pbkdf2_hmac(algorithm, password.encode("utf-8"),
                                     salt.encode("utf-8"), int(iterations))
        return hmac.compare_digest(base64.b64encode(digest).decode("ascii"), expected)
    return check


def _passlib(handler: object) -> Callable[[str, str, str], bool]:
    def check(stored: str, _salt: str, password: str) -> bool:
        return bool(handler.verify(password, stored))  # type: ignore[attr-defined]
    return check


_argon2 = PasswordHasher()


def _argon2_verify(stored: str, _salt: str, password: str) -> bool:
    # argon2-cffi reads the variant (id, i, d) and parameters from the hash itself.
    return _argon2.verify(stored, password)


def _salted_sha(algorithm: str, salt_last: bool) -> Callable[[str, str, str], bool]:
    def check(stored: str, salt: str, password: str) -> bool:
        if not salt:
            return False
        text = password + salt if salt_last else salt + password
        digest = hashlib.new(algorithm, text.encode("utf-8")).hexdigest()
        return hmac.compare_digest(digest, stored.lower())
    return check


_VERIFIERS: dict[str, Callable[[str, str, str], bool]] = {
    "bcrypt": _bcrypt,
    "django_pbkdf2_sha256": _django_pbkdf2("sha256"),
    "django_pbkdf2_sha1": _django_pbkdf2("sha1"),
    "pbkdf2_sha256": _passlib(pbkdf2_sha256),
    "pbkdf2_sha512": _passlib(pbkdf2_sha512),
    "pbkdf2_sha1": _passlib(pbkdf2_sha1),
    "sha512_crypt": _passlib(sha512_crypt),
    "sha256_crypt": _passlib(sha256_crypt),
    "md5_crypt": _passlib(md5_crypt),
    "argon2": _argon2_verify,
    **{name: _salted_sha(alg, last) for name, (alg, last) in SALTED_SHA.items()},
}
