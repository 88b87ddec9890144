"""Multi-factor authentication: methods, codes, recovery codes, trusted browsers, resets.

The login steps `mfa_enroll` and `mfa_challenge` (idp/login/steps/) use these; the account
pages and the admin console will too. RFC 8176 `amr` values used after a second factor:

| method              | amr                     |
|---------------------|-------------------------|
| authenticator app   | "otp" (RFC 6238 TOTP)   |
| text message code   | "sms"                   |
| email code          | "mail" (not registered in RFC 8176, which allows other values; |
|                     | agreed with the portals, as the issue names it) |
| recovery code       | no method value: "mfa" alone |
| trusted browser     | no method value: "mfa" alone (the browser is the second factor) |

"mfa" is added whenever a second factor passed, so `acr` becomes urn:portal-idp:acr:mfa.
"""
