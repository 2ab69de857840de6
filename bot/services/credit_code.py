"""Unified social credit code (统一社会信用代码, GB 32100-2015): normalisation and validation."""

from __future__ import annotations

import unicodedata

__all__ = [
    "CREDIT_CODE_ALPHABET",
    "CREDIT_CODE_LENGTH",
    "credit_code_check_char",
    "normalize_credit_code",
    "validate_credit_code",
]

CREDIT_CODE_LENGTH = 18
#: The 31 characters allowed by GB 32100-2015 (no I, O, Z, S, V); a character's value is its index.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_VALUES = {char: value for value, char in enumerate(CREDIT_CODE_ALPHABET)}
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_NEVER_USED = "IOZSV"


def normalize_credit_code(raw: str) -> str:
    """Return ``raw`` NFKC-normalised (full-width → ASCII), without any whitespace, upper-cased.

    No validation is done; see :func:`validate_credit_code`.
    """
    text = unicodedata.normalize("NFKC", raw)
    return "".join(text.split()).upper()


def _invalid_char_reason(char: str, position: int) -> str:
    reason = f"invalid character {char!r} at position {position}"
    if char in _NEVER_USED:
        reason += " (the letters I, O, Z, S and V are never used)"
    return reason


def credit_code_check_char(first17: str) -> str:
    """Return the check character (18th) for the first 17 characters of a normalised code.

    Raises ``ValueError`` when ``first17`` is not 17 characters of the code alphabet.
    """
    if len(first17) != CREDIT_CODE_LENGTH - 1:
        raise ValueError(f"expected 17 characters, got {len(first17)}")
    total = 0
    for position, (char, weight) in enumerate(zip(first17, _WEIGHTS, strict=True), start=1):
        value = _VALUES.get(char)
        if value is None:
            raise ValueError(_invalid_char_reason(char, position))
        total += value * weight
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def validate_credit_code(raw: str) -> str:
    """Return the normalised code, or raise ``ValueError`` with a precise English reason.

    Reasons: ``credit code is empty``, ``wrong length N; a credit code has 18 characters``,
    ``invalid character 'X' at position k``, ``check character should be 'Y', not 'Z'``.
    Positions are 1-based and count characters of the normalised code (spaces removed).
    """
    code = normalize_credit_code(raw)
    if not code:
        raise ValueError("credit code is empty")
    if len(code) != CREDIT_CODE_LENGTH:
        raise ValueError(f"wrong length {len(code)}; a credit code has {CREDIT_CODE_LENGTH} characters")
    for position, char in enumerate(code, start=1):
        if char not in _VALUES:
            raise ValueError(_invalid_char_reason(char, position))
    expected = credit_code_check_char(code[:-1])
    if code[-1] != expected:
        raise ValueError(f"check character should be {expected!r}, not {code[-1]!r}")
    return code
