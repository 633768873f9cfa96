"""The PKCS#11 token: platform and tender keys, which never leave it."""
