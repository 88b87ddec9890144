"""Multi-factor authentication: methods, codes, recovery codes, trusted browsers, resets.

The login steps `mfa_enroll` and `mfa_challenge` (idp/login/steps/) use these; the account
pages and the admin console will too. RFC 8176 `amr` values used after a second factor:

| method              | amr                     |
|---------------------|-------------------------|
| authenticator app   | "otp" (RFC 6238 TOTP)   |
| text message code   | "sms"                   |
| email code          | "mail" (not registered in RFC 8176, which allows other values; |
|                     | agreed with the portals, as the issue names it) |
| passkey or security key | "hwk" for a device-bound credential (security keys, device-bound |
|                     | platform passkeys), "swk" for a synced passkey (its "backup eligible" |
|                     | flag: the key is copied between devices by a passkey provider) |
| recovery code       | no method value: "mfa" alone |
| trusted browser     | no method value: "mfa" alone (the browser is the second factor) |

"mfa" is added whenever a second factor passed, so `acr` becomes urn:portal-idp:acr:mfa;
with a passkey (hwk or swk) it is urn:portal-idp:acr:phishing-resistant. "Sign in with a
passkey" (no password, user verification required) is ["hwk" or "swk", "mfa"].

Passkeys: `passkeys.py` (ceremonies, py_webauthn), `relying_party.py` (RP ID and origin
from the issuer), `passkey_sign_in.py` (the sign-in page's passkey autofill and button).
The account page (/account, `idp/account/manage.py`) needs a fresh second factor
(`freshness.py`) to change methods.
"""
