"""Identity numbers: validated, masked, linked across carriers, and turned into keyed pseudonyms."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.crypto import open_pseudonym, seal_pseudonym
from gateway.identity import (
    Identity,
    IdentityKeys,
    is_cn_resident_id,
    link_hash,
    mask_number,
    normalise_masked,
    resident_id_check_char,
    resident_id_problem,
)
from tests.conftest import LINK_KEY, SUBJECT_SECRET, resident_id


def test_check_character_follows_gb_11643():
    # Worked example from GB 11643-1999: 11010519491231002 -> X
    assert resident_id_check_char("11010519491231002") == "X"
    assert is_cn_resident_id("11010519491231002X")


@given(st.text(alphabet="0123456789", min_size=17, max_size=17))
def test_check_character_is_the_weighted_sum_of_the_digits_mod_11(first17: str) -> None:
    weights = [2 ** (17 - i) % 11 for i in range(17)]  # GB 11643: W_i = 2^(i-1) mod 11
    total = sum(int(d) * w for d, w in zip(first17, weights, strict=True))
    assert resident_id_check_char(first17) == "10X98765432"[total % 11]


@pytest.mark.parametrize(
    "text",
    [
        "1234567890123456",
        "123456789012345678",
        "1234567890123456X",
        "１２３４５６７８９０１２３４５６７",
    ],
)
def test_check_character_needs_17_ascii_digits(text: str) -> None:
    with pytest.raises(ValueError, match="17 digits"):
        resident_id_check_char(text)


@pytest.mark.parametrize(
    "number",
    [
        "11010519491231002x",
        "110105194912310021",
        "99010519491231002X",
        "11010519490231002X",
        "1101051949123100",
        "１１０１０５１９４９１２３１００２X",
        " 11010519491231002X",
    ],
    ids=["lower-x", "check-digit", "province", "bad-date", "short", "fullwidth", "space"],
)
def test_malformed_numbers_are_refused(number):
    if number.startswith("11010519490231"):
        number = number[:17] + resident_id_check_char(number[:17])
    assert not is_cn_resident_id(number)


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("11010519491231002x", "17 digits, then a digit or an upper-case X"),
        ("1101051949123100", "must be 18 characters"),
        ("99010519491231002X", "not a province code"),
        ("110105194902310020", "not a real date of birth"),
        ("110105189912310020", "before 1900"),
        ("110105194912310021", "check character"),
    ],
    ids=["lower-x", "short", "province", "bad-date", "before-1900", "check-digit"],
)
def test_a_malformed_number_says_why_without_quoting_it(number, why):
    problem = resident_id_problem(number)
    assert problem is not None
    assert why in problem
    assert number not in problem
    assert not any(part in problem for part in (number[:6], number[6:14], number[-4:]))
    assert resident_id_problem("11010519491231002X") is None


def test_mask_keeps_three_leading_and_two_trailing_characters():
    assert mask_number("11010519491231002X") == "110*************2X"


@pytest.mark.parametrize(
    ("region_mask", "uniform"),
    [
        ("3301**********1228", "330*************28"),  # Guangdong: first 4, last 4
        ("330106********1228", "330*************28"),  # Hubei: first 6, last 4
        ("330***************", None),  # hides the last two characters
        ("33**************28", None),  # hides the third character
        ("330*************2", None),  # too short
        ("330*************2x", None),  # lower-case check character
        ("330-************28", None),  # not a masking character
    ],
    ids=["first4-last4", "first6-last4", "hides-tail", "hides-head", "short", "lower", "dash"],
)
def test_region_masks_are_normalised_to_the_gateway_mask(region_mask, uniform):
    assert normalise_masked(region_mask) == uniform


def test_every_carrier_of_one_number_gives_one_subject():
    """Full number, masked number + link hash, and sealed pseudonym all link to one person."""
    keys = IdentityKeys(SUBJECT_SECRET, LINK_KEY)
    number = resident_id()
    full = keys.from_number(number)
    linked = Identity(normalise_masked("3301**********1228") or "", link_hash(LINK_KEY, number))
    pseudonym_key = os.urandom(64)
    sealed = seal_pseudonym(pseudonym_key, number.encode(), b"beijing")
    opened = open_pseudonym(pseudonym_key, sealed, b"beijing")
    assert opened is not None
    from_pseudonym = keys.from_number(opened.decode())
    assert full == linked == from_pseudonym
    assert keys.subject(full) == keys.subject(linked) == keys.subject(from_pseudonym)
    assert number not in repr(full)


def test_pseudonyms_are_stable_bound_to_their_issuer_and_tamper_evident():
    key = os.urandom(64)
    number = resident_id().encode()
    sealed = seal_pseudonym(key, number, b"beijing")
    assert seal_pseudonym(key, number, b"beijing") == sealed  # deterministic: a stable pseudonym
    assert number not in sealed
    assert open_pseudonym(key, sealed, b"macau") is None  # bound to its issuer
    assert open_pseudonym(os.urandom(64), sealed, b"beijing") is None
    assert open_pseudonym(key, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"beijing") is None


def test_subject_references_are_keyed_and_unlinkable_without_the_keys():
    a, b = resident_id(seq="001"), resident_id(seq="002")
    keys = IdentityKeys(SUBJECT_SECRET, LINK_KEY)
    assert keys.subject(keys.from_number(a)) != keys.subject(keys.from_number(b))
    other_subject = IdentityKeys(b"j" * 32, LINK_KEY)
    other_link = IdentityKeys(SUBJECT_SECRET, b"k" * 32)
    reference = keys.subject(keys.from_number(a))
    assert reference != other_subject.subject(other_subject.from_number(a))
    assert reference != other_link.subject(other_link.from_number(a))
    assert reference.startswith("s1.")
    # The verdict's reference does not reveal the link value regions can compute.
    assert link_hash(LINK_KEY, a).hex() not in reference
    assert repr(keys) == "IdentityKeys(<secret>)"


def test_identity_keys_must_be_long_enough():
    with pytest.raises(ValueError, match="32 bytes"):
        IdentityKeys(b"short", LINK_KEY)
    with pytest.raises(ValueError, match="32 bytes"):
        IdentityKeys(SUBJECT_SECRET, b"short")
