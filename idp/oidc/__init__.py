"""The OpenID provider: authlib's AuthorizationServer, grants, discovery, JWKS, logout."""
