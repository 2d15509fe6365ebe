"""Bearer tokens: compared in constant time, whatever a caller sends."""

from __future__ import annotations

import hmac


def token_matches(given: object, expected: str) -> bool:
    """Compare an offered token with the configured one in constant time; False for non-text input."""
    if not isinstance(given, str) or not given or not expected:
        return False
    # surrogatepass: a lone surrogate ("\ud800", valid JSON) is compared as bytes, not an encoding error
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))
