"""Passkeys and security keys: WebAuthn registration and assertions, through py_webauthn.

- **RP ID** is the issuer's host name and the **origin** the issuer's origin
  (`idp.mfa.relying_party`): a passkey works for every portal that signs in here. Not
  offered on an issuer at an IP address, which browsers refuse as an RP ID.
- **Challenges** are random, stored server-side (`WebAuthnChallenge`), bound to the login
  transaction (or, on the account page, to the browser and the person), valid 10 minutes,
  and used once: a conditional UPDATE claims them, so a replayed response fails.
- **Stored** per credential (an `MfaMethod` of kind "webauthn"): the credential id, the COSE
  public key, transports, AAGUID and backup flags in `data`; the signature counter in
  `counter`. A counter that does not grow (when the authenticator keeps one) means a cloned
  authenticator: the assertion is refused.
- **User verification** is preferred for a second factor (after the password) and required
  for "Sign in with a passkey" (then the passkey alone is two factors: something you have,
  unlocked by something you know or are).
- **amr** (RFC 8176): `hwk` for a credential bound to one device's hardware (security keys,
  device-bound platform passkeys), `swk` for a synced passkey, recognised by the "backup
  eligible" flag it carries from its creation (WebAuthn L3 6.1.3: its private key is
  copied between devices by a passkey provider, so it is a software key); "mfa" is added.
  Both are phishing-resistant (the browser binds the signature to the origin), so either
  earns `urn:portal-idp:acr:phishing-resistant`.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_client_data_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticationCredential,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    RegistrationCredential,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from idp.clock import utcnow
from idp.db import db
from idp.mfa.methods import MfaError, confirm_method, record_success
from idp.mfa.relying_party import expected_origin, relying_party_id
from idp.models import MfaMethod, User, WebAuthnChallenge

log = logging.getLogger("idp.mfa")

KIND = "webauthn"
REGISTER = "register"
SECOND_FACTOR = "second_factor"
SIGN_IN = "sign_in"
CHALLENGE_LIFETIME = timedelta(minutes=10)
CEREMONY_TIMEOUT_MS = 5 * 60 * 1000
MAX_CREDENTIAL_JSON = 64 * 1024
MAX_LABEL = 100

DIDNT_WORK = "That passkey didn't work. Try again, or use another method."
EXPIRED = "That passkey request has expired. Try again."
UNKNOWN = ("This passkey isn't set up for an account here. Sign in with your email and "
           "password, then add it on your account page.")
NEEDS_VERIFICATION = ("Your passkey must check it's you (a PIN, fingerprint or face) to sign "
                      "in without a password. Try again, or sign in with your password.")


class PasskeyError(MfaError):
    """A refused WebAuthn response; the message is for the person."""


@dataclass(frozen=True)
class Binding:
    """What a ceremony's challenge is bound to: a sign-in, or the browser and the person."""

    login_transaction_id: str | None = None
    browser_id: str | None = None

    def conditions(self) -> list[Any]:
        return [WebAuthnChallenge.login_transaction_id == self.login_transaction_id
                if self.login_transaction_id is not None
                else WebAuthnChallenge.login_transaction_id.is_(None),
                WebAuthnChallenge.browser_id == self.browser_id
                if self.browser_id is not None else WebAuthnChallenge.browser_id.is_(None)]


@dataclass(frozen=True)
class Assertion:
    """A verified assertion: the credential used and the `amr` value it earns."""

    method: MfaMethod
    amr: str
    user_verified: bool


# -- the relying party --------------------------------------------------------------------


def rp_name() -> str:
    """The name an authenticator may show beside the passkey: the IdP's host name."""
    return relying_party_id() or "Portal IdP"


def user_handle(user: User) -> bytes:
    """The WebAuthn user id: the person's random `sub` (never the email: L2 14.6.1)."""
    return user.sub.encode("ascii")


# -- credentials --------------------------------------------------------------------------


def credentials_of(user: User) -> list[MfaMethod]:
    """The person's confirmed passkeys and security keys."""
    return list(db.session.scalars(
        db.select(MfaMethod).where(MfaMethod.user_id == user.id, MfaMethod.kind == KIND,
                                   MfaMethod.confirmed_at.is_not(None))
        .order_by(MfaMethod.id)
    ).all())


def amr_of(method: MfaMethod) -> str:
    """`swk` for a synced (backup-eligible) passkey, else `hwk` (see the module's docstring)."""
    return "swk" if (method.data or {}).get("backup_eligible") else "hwk"


def _descriptors(methods: list[MfaMethod]) -> list[PublicKeyCredentialDescriptor]:
    out = []
    for method in methods:
        transports = []
        for value in (method.data or {}).get("transports", []):
            try:
                transports.append(AuthenticatorTransport(value))
            except ValueError:
                continue
        out.append(PublicKeyCredentialDescriptor(
            id=base64url_to_bytes(method.data["credential_id"]), transports=transports or None))
    return out


def default_label(transports: list[str]) -> str:
    """What a new credential is called until the person names it."""
    roaming = {"usb", "nfc", "ble", "smart-card"}
    return "Security key" if transports and set(transports) <= roaming else "Passkey"


def clean_label(label: str) -> str:
    return " ".join(label.split())[:MAX_LABEL]


# -- challenges ---------------------------------------------------------------------------


def _new_challenge(purpose: str, binding: Binding, user: User | None) -> bytes:
    """A fresh challenge; an unused one of the same purpose and binding stops working."""
    now = utcnow()
    db.session.execute(
        db.delete(WebAuthnChallenge).where(
            WebAuthnChallenge.purpose == purpose, *binding.conditions(),
            WebAuthnChallenge.used_at.is_(None),
        )
    )
    # Housekeeping: expired challenges are of no use to anyone.
    db.session.execute(db.delete(WebAuthnChallenge).where(
        WebAuthnChallenge.expires_at < now - timedelta(days=1)))
    value = secrets.token_bytes(32)  # WebAuthn L2 13.4.3: at least 16 random bytes
    db.session.add(WebAuthnChallenge(
        challenge=bytes_to_base64url(value), purpose=purpose,
        login_transaction_id=binding.login_transaction_id, browser_id=binding.browser_id,
        user_id=user.id if user is not None else None, created_at=now,
        expires_at=now + CHALLENGE_LIFETIME,
    ))
    db.session.commit()
    return value


def _claim_challenge(value: bytes, purpose: str, binding: Binding,
                     user: User | None) -> None:
    """Use the challenge once; PasskeyError when it is unknown, spent, expired or not ours."""
    conditions = [WebAuthnChallenge.challenge == bytes_to_base64url(value),
                  WebAuthnChallenge.purpose == purpose, *binding.conditions(),
                  WebAuthnChallenge.used_at.is_(None), WebAuthnChallenge.expires_at > utcnow()]
    if user is not None:
        conditions.append(WebAuthnChallenge.user_id == user.id)
    claimed = db.session.execute(
        update(WebAuthnChallenge).where(*conditions).values(used_at=utcnow())
    )
    db.session.commit()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise PasskeyError(EXPIRED)


# -- registration -------------------------------------------------------------------------


def registration_options(user: User, binding: Binding) -> str:
    """The JSON for navigator.credentials.create(): a discoverable credential if possible."""
    challenge = _new_challenge(REGISTER, binding, user)
    options = generate_registration_options(
        rp_id=relying_party_id(), rp_name=rp_name(), user_id=user_handle(user),
        user_name=user.email, user_display_name=user.name or user.email, challenge=challenge,
        timeout=CEREMONY_TIMEOUT_MS,
        # Discoverable where the authenticator can (so it can sign in without a password);
        # user verification preferred: a security key without a PIN still works as a factor.
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(credentials_of(user)),
    )
    return str(options_to_json(options))


def _parse_registration(credential_json: str) -> RegistrationCredential:
    if not credential_json or len(credential_json) > MAX_CREDENTIAL_JSON:
        raise PasskeyError(DIDNT_WORK)
    try:
        return parse_registration_credential_json(credential_json)
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyError(DIDNT_WORK) from exc


def register_credential(user: User, credential_json: str, label: str,
                        binding: Binding) -> MfaMethod:
    """Verify a navigator.credentials.create() response and keep the credential (confirmed)."""
    credential = _parse_registration(credential_json)
    challenge = _challenge_of(credential)
    _claim_challenge(challenge, REGISTER, binding, user)
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge,
            expected_rp_id=relying_party_id(), expected_origin=expected_origin(),
            require_user_verification=False,
        )
    except WebAuthnException as exc:
        log.info("passkey registration refused for user %s: %s", user.sub, exc)
        raise PasskeyError(DIDNT_WORK) from exc
    credential_id = bytes_to_base64url(verified.credential_id)
    if any(m.data.get("credential_id") == credential_id for m in credentials_of(user)):
        raise PasskeyError("That passkey is already set up for your account.")
    transports = [t.value for t in credential.response.transports or []]
    attachment = credential.authenticator_attachment
    method = MfaMethod(
        user_id=user.id, kind=KIND, label=clean_label(label) or default_label(transports),
        counter=verified.sign_count,
        data={
            "credential_id": credential_id,
            "public_key": bytes_to_base64url(verified.credential_public_key),
            "transports": transports,
            "aaguid": verified.aaguid,
            "attachment": attachment.value if attachment is not None else None,
            "backup_eligible":
                verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
            "backed_up": verified.credential_backed_up,
            "user_verified": verified.user_verified,
            "attestation_format": str(getattr(verified.fmt, "value", verified.fmt)),
        },
    )
    db.session.add(method)
    db.session.flush()
    confirm_method(method)
    db.session.commit()
    return method


# -- authentication -----------------------------------------------------------------------


def authentication_options(purpose: str, binding: Binding, user: User | None = None) -> str:
    """The JSON for navigator.credentials.get().

    A second factor lists the person's credentials (user verification preferred); signing
    in with a passkey lists none, so the browser offers the discoverable ones for this RP
    (user verification required).
    """
    challenge = _new_challenge(purpose, binding, user)
    options = generate_authentication_options(
        rp_id=relying_party_id(), challenge=challenge, timeout=CEREMONY_TIMEOUT_MS,
        allow_credentials=_descriptors(credentials_of(user)) if user is not None else [],
        user_verification=UserVerificationRequirement.REQUIRED if purpose == SIGN_IN
        else UserVerificationRequirement.PREFERRED,
    )
    return str(options_to_json(options))


def _parse_assertion(credential_json: str) -> AuthenticationCredential:
    if not credential_json or len(credential_json) > MAX_CREDENTIAL_JSON:
        raise PasskeyError(DIDNT_WORK)
    try:
        return parse_authentication_credential_json(credential_json)
    except (WebAuthnException, ValueError, TypeError) as exc:
        raise PasskeyError(DIDNT_WORK) from exc


def _challenge_of(credential: RegistrationCredential | AuthenticationCredential) -> bytes:
    try:
        return bytes(parse_client_data_json(credential.response.client_data_json).challenge)
    except (WebAuthnException, ValueError, TypeError, KeyError) as exc:
        raise PasskeyError(DIDNT_WORK) from exc


def _owner_of(credential: AuthenticationCredential) -> User | None:
    """Who a discoverable credential says it belongs to (its user handle is our `sub`)."""
    handle = credential.response.user_handle
    if not handle:
        return None
    try:
        sub = bytes(handle).decode("ascii")
    except UnicodeDecodeError:
        return None
    return db.session.scalars(db.select(User).where(User.sub == sub)).first()


def verify_assertion(credential_json: str, purpose: str, binding: Binding,
                     user: User | None = None) -> Assertion:
    """Verify a navigator.credentials.get() response; the counter and last use are saved.

    `user` is the person already known (a second factor); None for signing in with a
    passkey, where the credential's user handle names the person.
    """
    credential = _parse_assertion(credential_json)
    challenge = _challenge_of(credential)
    _claim_challenge(challenge, purpose, binding, user)
    owner = user if user is not None else _owner_of(credential)
    if owner is not None and user is None and not owner.is_active:
        owner = None
    credential_id = bytes_to_base64url(bytes(credential.raw_id))
    method = next((m for m in credentials_of(owner) if m.data.get("credential_id")
                   == credential_id), None) if owner is not None else None
    if method is None:
        raise PasskeyError(UNKNOWN if purpose == SIGN_IN else DIDNT_WORK)
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=challenge,
            expected_rp_id=relying_party_id(), expected_origin=expected_origin(),
            credential_public_key=base64url_to_bytes(method.data["public_key"]),
            credential_current_sign_count=method.counter or 0,
            require_user_verification=purpose == SIGN_IN,
        )
    except WebAuthnException as exc:
        log.warning("passkey assertion refused for user %s, credential %s: %s",
                    method.user.sub, method.id, exc)
        if purpose == SIGN_IN and "verification" in str(exc).lower():
            raise PasskeyError(NEEDS_VERIFICATION) from exc
        raise PasskeyError(DIDNT_WORK) from exc
    _save_counter(method, verified.new_sign_count)
    method.data = {**method.data, "backed_up": verified.credential_backed_up}
    record_success(method)
    db.session.commit()
    return Assertion(method, amr_of(method), verified.user_verified)


def _save_counter(method: MfaMethod, new_count: int) -> None:
    """Store the counter only if it grew (or the authenticator keeps none: 0 and 0).

    py_webauthn checked it against the value read; the conditional UPDATE also refuses a
    parallel assertion of a cloned authenticator that read the same value.
    """
    if new_count == 0:
        unchanged = or_(MfaMethod.counter.is_(None), MfaMethod.counter == 0)
    else:
        unchanged = or_(MfaMethod.counter.is_(None), MfaMethod.counter < new_count)
    saved = db.session.execute(
        update(MfaMethod).where(MfaMethod.id == method.id, unchanged)
        .values(counter=new_count)
    )
    if saved.rowcount != 1:  # type: ignore[attr-defined]
        db.session.commit()
        log.warning("passkey counter went back for user %s, credential %s: a clone?",
                    method.user.sub, method.id)
        raise PasskeyError(DIDNT_WORK)
    method.counter = new_count


def rename_credential(method: MfaMethod, label: str) -> None:
    """Give a passkey (or any method) the person's own name for it."""
    name = clean_label(label)
    if not name:
        raise MfaError("Enter a name, like \"Work laptop\".")
    method.label = name
    db.session.commit()


def options_attribute(options_json: str) -> str:
    """Options as compact JSON for a `data-` attribute (Jinja escapes it)."""
    return json.dumps(json.loads(options_json), separators=(",", ":"))
