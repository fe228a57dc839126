"""Identity numbers: validated, masked, and turned into keyed pseudonyms."""

from __future__ import annotations

import pytest

from gateway.identity import (
    IdentityClaim,
    IdentityScheme,
    SubjectKeys,
    is_cn_resident_id,
    mask,
    resident_id_check_char,
)
from tests.conftest import resident_id


def test_check_character_follows_gb_11643():
    # Worked example from GB 11643-1999: 11010519491231002 -> X
    assert resident_id_check_char("11010519491231002") == "X"
    assert is_cn_resident_id("11010519491231002X")


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002x",  # lower-case check character
        "110105194912310021",  # wrong check digit
        "99010519491231002X",  # unknown province
        "11010519490231002X",  # 31 February... built below with a valid check digit
        "1101051949123100",  # too short
        "１１０１０５１９４９１２３１００２X",  # fullwidth digits
        " 11010519491231002X",
    ],
    ids=["lower-x", "check-digit", "province", "bad-date", "short", "fullwidth", "space"],
)
def test_malformed_numbers_are_refused(number):
    if number.startswith("11010519490231"):
        number = number[:17] + resident_id_check_char(number[:17])
    assert not is_cn_resident_id(number)


def test_mask_keeps_three_leading_and_two_trailing_characters():
    claim = IdentityClaim(IdentityScheme.CN_RESIDENT_ID, "11010519491231002X")
    assert mask(claim) == "110*************2X"
    assert "11010519491231002X" not in repr(claim)


def test_subject_references_are_stable_keyed_and_unlinkable_without_the_key():
    a = IdentityClaim(IdentityScheme.CN_RESIDENT_ID, resident_id(seq="001"))
    b = IdentityClaim(IdentityScheme.CN_RESIDENT_ID, resident_id(seq="002"))
    keys = SubjectKeys(b"k" * 32)
    assert keys.subject(a) == SubjectKeys(b"k" * 32).subject(a)
    assert keys.subject(a) != keys.subject(b)
    assert keys.subject(a) != SubjectKeys(b"j" * 32).subject(a)
    assert keys.subject(a).startswith("s1.")
    assert a.value not in keys.subject(a)
    assert keys.code_ref(b"content") != keys.subject(a)
    assert "k" * 32 not in repr(keys)


def test_subject_key_must_be_long_enough():
    with pytest.raises(ValueError, match="32 bytes"):
        SubjectKeys(b"short")
