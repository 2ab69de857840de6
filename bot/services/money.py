"""Funds in 万元 (10,000 CNY): Decimal with at most two places, typed on a phone."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

MAX_WAN = Decimal("9999999999.99")  # fits Numeric(12, 2)
_AMOUNT = re.compile(r"\d{1,10}(\.\d{1,2})?")


class AmountError(ValueError):
    """Why the text is not an amount; `reason` is one of: format, places, too_large."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_wan(text: str) -> Decimal:
    """'12.5', '12.50', '１２.５', '12.5万元' → Decimal('12.50'); '-1', 'abc', '1e9', '1.234' are refused."""
    value = unicodedata.normalize("NFKC", text).strip().replace("，", "").replace(",", "")
    value = value.removesuffix("万元").removesuffix("万").strip().replace("。", ".")
    if re.fullmatch(r"\d+\.\d{3,}", value):
        raise AmountError("places")
    if re.fullmatch(r"\d{11,}(\.\d+)?", value):
        raise AmountError("too_large")
    if not _AMOUNT.fullmatch(value):
        raise AmountError("format")
    return Decimal(value).quantize(Decimal("0.01"))
