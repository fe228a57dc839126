"""Parts of a profile in words, for people: ``huren profile check`` and the dry run's trace."""

from __future__ import annotations

from gateway.crypto import ADMISSIBLE
from gateway.identity import IdentityScheme
from gateway.model import format_span
from gateway.profiles.model import Condition, IdentityField, Profile, Test, TimeField, TimeFormat


def describe_algorithms(profile: Profile) -> str:
    """The algorithms a profile's keys may have."""
    if profile.envelope.algorithms:
        return f"by {', '.join(a.value for a in profile.envelope.algorithms)} keys only"
    admitted = ", ".join(sorted(a.value for a in ADMISSIBLE))
    return f"by keys of any algorithm the gateway admits ({admitted})"


def describe_time(field: TimeField) -> str:
    """Where a time is read and how it is written: ``iat (unix-s)``, or a local pattern."""
    how = field.format.value
    if field.format is TimeFormat.LOCAL:
        assert field.zone is not None  # the loader requires it
        how = f"local, pattern {field.pattern!r} in {field.zone.key}"
    optional = ", optional" if field.optional else ""
    return f"{field.path.text} ({how}{optional})"


def describe_identity(identity: IdentityField) -> str:
    """How a profile's codes carry the holder, and where."""
    scheme = identity.scheme
    if scheme is IdentityScheme.MASKED_LINK:
        assert identity.masked is not None
        assert identity.link is not None
        where = f"masked number at {identity.masked.text}, link hash at {identity.link.text}"
    elif scheme is IdentityScheme.NAME_DOB:
        assert identity.family is not None
        assert identity.given is not None
        assert identity.birth is not None
        where = (
            f"family name at {identity.family.text}, given name at {identity.given.text}, "
            f"date of birth at {identity.birth.text}"
        )
    elif scheme is IdentityScheme.PSEUDONYM:
        assert identity.path is not None
        where = f"sealed number at {identity.path.text} (opened with the issuer's pseudonym key)"
    else:
        assert identity.path is not None
        where = f"full number at {identity.path.text} (masked in every verdict)"
    return f"{scheme.value}: {where}"


def describe_condition(condition: Condition) -> str:
    """One colour-rule condition in words (``huren profile check``)."""
    path, test, value = condition.path.text, condition.test, condition.value
    if test is Test.EQUALS:
        return f"{path} = {value!r}"
    if test is Test.IN:
        return f"{path} in {list(value)!r}"
    if test is Test.PRESENT:
        return f"{path} {'is present' if value else 'is absent'}"
    if test is Test.WITHIN:
        return f"{path} within the last {format_span(value)}"
    if test is Test.OLDER_THAN:
        return f"{path} older than {format_span(value)}"
    if test is Test.AT_LEAST:
        return f"{path} >= {value}"
    if test is Test.AT_LEAST_PATH:
        assert condition.other is not None
        return f"{path} >= {condition.other.text}"
    inner = " and ".join(describe_condition(c) for c in condition.where)
    return f"at least {value} of {path} with {inner}"
