"""Who the IdP is to WebAuthn: its RP ID and origin, both taken from the issuer.

The RP ID is the issuer's host name and the origin the issuer's origin: a passkey works for
every portal, because they all sign in on the IdP's own pages. Browsers accept only a
domain as RP ID, never an IP address (WebAuthn L2 5.1.3, "effective domain"), so on an
issuer like `http://127.0.0.1:5000` passkeys are not offered (`http://localhost:5000` works).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flask import current_app


def relying_party_id() -> str:
    """The RP ID: the issuer's host name."""
    return urlsplit(current_app.extensions["idp"].settings.server.issuer).hostname or ""


def expected_origin() -> str:
    """The origin the browser reports in clientDataJSON: the issuer's scheme, host, port."""
    issuer = urlsplit(current_app.extensions["idp"].settings.server.issuer)
    return f"{issuer.scheme}://{issuer.netloc}"


def passkeys_supported() -> bool:
    """True when browsers will accept the RP ID: a domain name, not an IP address."""
    host = relying_party_id()
    if not host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False
