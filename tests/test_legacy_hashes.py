"""Legacy hash formats: detected from hashes the real libraries make, verified natively."""

from __future__ import annotations

import hashlib
import shutil
import subprocess

import bcrypt
import pytest

from idp.security.legacy_hashes import LegacyHashError, detect_scheme, verify_legacy
from tests.legacy import LEGACY_PASSWORD, MAKERS, legacy_hash


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_each_format_is_detected_and_verifies_only_the_right_password(kind):
    scheme = MAKERS[kind][0]
    password_hash, salt = legacy_hash(kind, "Correct Horse 9")
    assert detect_scheme(password_hash, salt) == scheme
    assert verify_legacy(scheme, password_hash, salt, "Correct Horse 9")
    assert not verify_legacy(scheme, password_hash, salt, "correct horse 9")
    assert not verify_legacy(scheme, password_hash, salt, "")


@pytest.mark.parametrize("flag", ["-1", "-5", "-6"])
def test_crypt_hashes_from_openssl_verify_too(flag):
    """A second, independent implementation of MD5-, SHA-256- and SHA-512-crypt."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    made = subprocess.run(["openssl", "passwd", flag, "-salt", "kX9sl2Qa", LEGACY_PASSWORD],
                          capture_output=True, text=True, check=True).stdout.strip()
    scheme = detect_scheme(made)
    assert scheme == {"-1": "md5_crypt", "-5": "sha256_crypt", "-6": "sha512_crypt"}[flag]
    assert verify_legacy(scheme, made, None, LEGACY_PASSWORD)
    assert not verify_legacy(scheme, made, None, LEGACY_PASSWORD + "!")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_salted_sha_with_the_salt_after_the_password_needs_the_scheme_column(algorithm):
    salt = "NaCl-42"
    digest = hashlib.new(algorithm, (LEGACY_PASSWORD + salt).encode()).hexdigest().upper()
    hint = f"salted_{algorithm}_salt_last"
    assert detect_scheme(digest, salt, hint) == hint
    assert verify_legacy(hint, digest, salt, LEGACY_PASSWORD)
    # Without the hint the salt is taken to come first, which does not match.
    assert not verify_legacy(detect_scheme(digest, salt), digest, salt, LEGACY_PASSWORD)


def test_salted_sha_takes_the_salt_as_utf8_text():
    salt = "sél"
    digest = hashlib.sha256((salt + "pässword").encode("utf-8")).hexdigest()
    assert verify_legacy(detect_scheme(digest, salt), digest, salt, "pässword")


def test_bcrypt_compares_the_first_72_bytes_as_every_bcrypt_did():
    long_password = "x" * 72
    stored = bcrypt.hashpw(long_password.encode(), bcrypt.gensalt(4)).decode()
    assert verify_legacy("bcrypt", stored, None, long_password + "anything after byte 72")


@pytest.mark.parametrize(("value", "salt", "hint", "fragment"), [
    pytest.param("tulip42", None, None, "unknown hash format", id="plaintext"),
    pytest.param("{SSHA}3nq9xbnRfCdsnJ8Hc0OZ2bNW1w5zYWx0", None, None, "unknown hash format",
                 id="ldap-ssha"),
    pytest.param("$2x$04$" + "a" * 53, None, None, "unknown hash format", id="bcrypt-2x"),
    pytest.param(hashlib.md5(b"tulip42").hexdigest(), None, None, "unknown hash format",
                 id="unsalted-md5"),
    pytest.param(hashlib.sha1(b"tulip42").hexdigest(), None, None, "needs its salt",
                 id="sha1-without-salt"),
    pytest.param("$2b$15$" + "a" * 53, None, None, "above 14", id="bcrypt-too-slow"),
    pytest.param("pbkdf2_sha256$9000000$abc$" + "A" * 43 + "=", None, None, "above 2000000",
                 id="pbkdf2-too-slow"),
    pytest.param("$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g", None, None,
                 "memory", id="argon2-too-much-memory"),
    pytest.param(None, "NaCl", None, "carries its own salt", id="salt-with-bcrypt"),
    pytest.param(None, None, "md5_crypt", "does not match", id="hint-disagrees"),
    pytest.param(None, None, "rot13", "unknown scheme", id="unknown-hint"),
])
def test_unusable_hashes_are_refused_with_the_reason(value, salt, hint, fragment):
    if value is None:
        value = legacy_hash("bcrypt-2b")[0]
    with pytest.raises(LegacyHashError, match=fragment):
        detect_scheme(value, salt, hint)


def test_a_hash_the_library_refuses_does_not_verify():
    assert not verify_legacy("bcrypt", "$2b$04$" + "!" * 53, None, LEGACY_PASSWORD)
    assert not verify_legacy("no-such-scheme", "anything", None, LEGACY_PASSWORD)
