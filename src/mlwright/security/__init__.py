"""Security: API tokens for the serving API (identities and roles come later).

>>> from mlwright.security import create_token, verify_token   # doctest: +SKIP
"""

from mlwright.security.tokens import (
    SCOPES,
    CreatedToken,
    TokenInfo,
    TokenVerifier,
    create_token,
    list_tokens,
    revoke_token,
    verify_token,
)

__all__ = [
    "SCOPES",
    "CreatedToken",
    "TokenInfo",
    "TokenVerifier",
    "create_token",
    "list_tokens",
    "revoke_token",
    "verify_token",
]
