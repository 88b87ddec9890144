"""Demo portals: small, real relying parties that know the IdP only through discovery."""
