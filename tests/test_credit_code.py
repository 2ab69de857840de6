"""Unified social credit code: normalisation, check character, validation messages."""

from __future__ import annotations

import pytest

from bot.services.credit_code import (
    CREDIT_CODE_ALPHABET,
    credit_code_check_char,
    normalize_credit_code,
    validate_credit_code,
)

# Published codes, checked by hand. For the GB 32100-2015 example "91350100M000100Y43":
#   values  9 1 3 5 0 1 0 0 M=21 0 0 0 1 0 0 Y=30 4
#   weights 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28
#   sum = 9+3+27+135+0+26+0+0+420+0+0+0+8+0+0+900+112 = 1640; 1640 % 31 = 28; 31 - 28 = 3 → '3'.
PUBLISHED = [
    "91350100M000100Y43",  # the standard's own example
    "914403001922038216",  # Huawei Technologies Co., Ltd. (check character '6')
    "91440300708461136T",  # Shenzhen Tencent Computer Systems Co., Ltd. (check character 'T')
]


@pytest.mark.parametrize("code", PUBLISHED)
def test_published_codes_are_valid(code: str) -> None:
    assert validate_credit_code(code) == code
    assert credit_code_check_char(code[:17]) == code[17]


@pytest.mark.parametrize(
    "first17",
    ["91110108MA0123456", "12100000400000319", "52440300MJL000000", "Y1000000000000000", "93000000000000000"],
)
def test_generated_codes_round_trip(first17: str) -> None:
    code = first17 + credit_code_check_char(first17)
    assert validate_credit_code(code) == code


def test_check_char_wraps_31_to_0() -> None:
    # Find a prefix whose weighted sum is divisible by 31: the check character must then be '0'.
    for last in CREDIT_CODE_ALPHABET:
        first17 = "9144030000000000" + last
        if credit_code_check_char(first17) == "0":
            assert validate_credit_code(first17 + "0") == first17 + "0"
            return
    pytest.fail("no prefix with check character '0' found")


def test_every_single_substitution_is_detected() -> None:
    code = PUBLISHED[0]
    for i in range(18):
        for char in CREDIT_CODE_ALPHABET:
            if char == code[i]:
                continue
            with pytest.raises(ValueError, match="check character should be"):
                validate_credit_code(code[:i] + char + code[i + 1 :])


def test_every_adjacent_transposition_is_detected() -> None:
    code = PUBLISHED[1]
    for i in range(17):
        if code[i] != code[i + 1]:
            with pytest.raises(ValueError):
                validate_credit_code(code[:i] + code[i + 1] + code[i] + code[i + 2 :])


def test_normalize_full_width_spaces_and_case() -> None:
    raw = "\u3000９１３５ ０１００ｍ０００\u3000１００ｙ４３ \t"
    assert normalize_credit_code(raw) == "91350100M000100Y43"
    assert validate_credit_code(raw) == "91350100M000100Y43"
    assert validate_credit_code("91440300708461136t") == "91440300708461136T"


def test_normalize_does_not_validate() -> None:
    assert normalize_credit_code(" abc ") == "ABC"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "credit code is empty"),
        ("\u3000 ", "credit code is empty"),
        ("91350100M000100Y4", "wrong length 17; a credit code has 18 characters"),
        ("91350100M000100Y433", "wrong length 19; a credit code has 18 characters"),
        (
            "91350100M0001OOY43",
            "invalid character 'O' at position 14 (the letters I, O, Z, S and V are never used)",
        ),
        ("91350100M000100Y4-", "invalid character '-' at position 18"),
        ("91350100M000100Y44", "check character should be '3', not '4'"),
        ("914403001922038217", "check character should be '6', not '7'"),
    ],
)
def test_invalid_codes_give_precise_reasons(raw: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_credit_code(raw)
    assert str(info.value) == message


def test_check_char_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="expected 17 characters, got 18"):
        credit_code_check_char(PUBLISHED[0])
    with pytest.raises(ValueError, match="invalid character 'I' at position 1"):
        credit_code_check_char("I1350100M000100Y4")
