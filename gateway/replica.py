"""What a verifier replica decides about a trust list, with no I/O and no clock.

A replica holds no registry: it judges codes on the trust list the hub signed
(:mod:`gateway.trustlist`), which it reads here into the same :class:`TrustSnapshot` the hub
verifies with. Three decisions, each refusing with :class:`ConfigurationInvalid`:

1. :func:`read`: the text is a trust list signed by the pinned key (step 1: type, key and
   signature, by :func:`gateway.trustlist.verify`), its freshness window is sane (step 2) and
   every part of its content validates as the hub's registry validated it (step 3: each profile
   and policy is loaded again from its exact text and must hash to what the list says; keys are
   parsed with their registered algorithm).
   A heartbeat of the held content (the same JSON but for its two instants) is recognised by
   the digest of that JSON and not validated again (:func:`read` with ``held``).
2. :func:`successor`: a list replaces the held one only if its ``(version, issued_at)`` is
   greater (a lower version is a rollback, the same version issued earlier a replay).
3. Freshness is the service's to judge with its clock (``fresh_until`` travels with the
   snapshot into :class:`~gateway.registry.TrustHolder`).

What the list does not carry (pseudonym keys, online issuers' client credentials) is absent from
the snapshot: their codes are UNVERIFIABLE ``ERR_SECRET_UNAVAILABLE`` on a replica without the
replica secrets. An online issuer's verify URL is the list's (signed), never the secrets'.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from gateway.crypto import Algorithm, PublicKey, load_spki_der
from gateway.errors import ConfigurationInvalid
from gateway.model import IssuerId, KeyId, ProfileId, Reason, parse_region_code
from gateway.policy.loader import load_policy
from gateway.policy.model import Policy
from gateway.profiles.loader import load_profile
from gateway.profiles.model import Profile
from gateway.registry import Issuer, IssuerKey, KeyStatus, OnlineEndpoint, Revocations
from gateway.registry.model import (
    CODE_URL_PREFIX,
    ISSUER_ID,
    KEY_ID,
    MAX_URL_CHARS,
    SERVICE_URL,
    PolicyVersion,
    Retirement,
)
from gateway.registry.snapshot import TrustSnapshot
from gateway.tomltable import Table
from gateway.trustlist import MAX_FRESH_FOR, loads_content, verified_payload

MAX_ISSUERS = 10_000
MAX_KEYS_PER_ISSUER = 1_000
MAX_REVOKED_IDS = 100_000


@dataclass(frozen=True, slots=True)
class TrustList:
    """A trust list that verified: its exact text and what it says."""

    text: str
    version: int
    issued_at: datetime
    fresh_until: datetime
    snapshot: TrustSnapshot
    body_sha256: bytes = b""
    """SHA-256 of its JSON after the dated head (see :func:`read`); empty if the JSON does not
    start with the head as the hub writes it."""

    @property
    def order(self) -> tuple[int, datetime]:
        """Lists compare by this: a greater one is newer."""
        return self.version, self.issued_at


def _refuse(message: str) -> ConfigurationInvalid:
    return ConfigurationInvalid(Reason.ERR_SCHEMA, f"trust list refused: {message}")


_DATED_HEAD = re.compile(
    rb'\{"version":(0|[1-9][0-9]{0,18}),"issued_at":"([0-9A-Za-z:.+-]{1,40})",'
    rb'"fresh_until":"([0-9A-Za-z:.+-]{1,40})",'
)
"""How the hub's JSON starts (:func:`gateway.trustlist.document`, written compact in this
order): the version and the two instants a heartbeat changes. What follows is the content."""


def read(text: str, key: PublicKey, held: TrustList | None = None) -> TrustList:
    """The trust list in ``text``, if ``key`` signed it and all of it validates.

    A heartbeat (the hub signing the same content again with new instants) is recognised
    without reading the content again: when the verified JSON starts with the dated head
    (:data:`_DATED_HEAD`), the version is ``held``'s and the SHA-256 of everything after the head
    is ``held``'s, the content is byte for byte the one ``held`` validated, and only the two
    instants are new (and checked as in step 2). At 100,000 keys that is a quarter of a second
    instead of five.

    Raises:
        ConfigurationInvalid: naming the first problem (another type or key, a bad signature,
            malformed or invalid content).
    """
    payload = verified_payload(text, key)  # step 1: type, key, signature
    head = _DATED_HEAD.match(payload)
    body = hashlib.sha256(memoryview(payload)[head.end() :]).digest() if head else b""
    if (
        head is not None
        and held is not None
        and held.body_sha256 == body
        and int(head.group(1)) == held.version
    ):
        issued_at, fresh_until = _window(head.group(2).decode(), head.group(3).decode())
        return TrustList(text.strip(), held.version, issued_at, fresh_until, held.snapshot, body)
    content = loads_content(payload)  # an object with an integer version
    root = Table(content, "", _refuse)
    try:
        version = root.integer("version", low=0, high=2**62)
        issued_at = _need_instant(root, "issued_at")
        fresh_until = _need_instant(root, "fresh_until")
        # Step 2: a window that starts before it ends and is no longer than a hub may sign.
        _check_window(issued_at, fresh_until)
        # Step 3: every part validated again.
        profiles, sources = _profiles(root)
        policies, policy_versions = _policies(root)
        issuers, keys, revocations, retired = _issuers(root, profiles)
        root.done()
        snapshot = TrustSnapshot(
            version,
            MappingProxyType(issuers),
            MappingProxyType(keys),
            MappingProxyType(profiles),
            policies=MappingProxyType(policies),
            revocations=MappingProxyType(revocations),
            retired=MappingProxyType(retired),
            profile_sources=MappingProxyType(sources),
            policy_versions=MappingProxyType(policy_versions),
        )
    except ConfigurationInvalid as e:
        if str(e).startswith("trust list refused"):
            raise
        raise _refuse(str(e)) from e
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error) as e:
        raise _refuse(f"invalid content ({type(e).__name__})") from e
    return TrustList(text.strip(), version, issued_at, fresh_until, snapshot, body)


def _check_window(issued_at: datetime, fresh_until: datetime) -> None:
    try:
        latest = issued_at + MAX_FRESH_FOR
    except OverflowError as e:  # an issued_at near the year 9999
        raise _refuse("issued_at is too late to be judged on") from e
    if not issued_at < fresh_until <= latest:
        raise _refuse(f"fresh_until must be after issued_at, by at most {MAX_FRESH_FOR}")


def _window(issued: str, fresh: str) -> tuple[datetime, datetime]:
    """A heartbeat's two instants, read and checked as the full read does (step 2)."""
    times = []
    for name, text in (("issued_at", issued), ("fresh_until", fresh)):
        try:
            value = datetime.fromisoformat(text)
        except ValueError as e:
            raise _refuse(f"{name} must be an instant") from e
        if value.tzinfo is None:
            raise _refuse(f"{name} has no time zone")
        times.append(value)
    _check_window(times[0], times[1])
    return times[0], times[1]


def successor(held: TrustList | None, candidate: TrustList) -> bool:
    """True if ``candidate`` replaces ``held``; False if it is the held list itself.

    Raises:
        ConfigurationInvalid: ``ERR_VERSION`` for a list older than the held one (a rollback:
            a lower version; a replay: the same version issued no later).
    """
    if held is None:
        return True
    if candidate.text == held.text:
        return False
    if candidate.version < held.version:
        raise ConfigurationInvalid(
            Reason.ERR_VERSION,
            f"trust list refused: version {candidate.version} is older than the version "
            f"{held.version} held (a rollback)",
        )
    if candidate.order <= held.order:
        raise ConfigurationInvalid(
            Reason.ERR_VERSION,
            f"trust list refused: version {candidate.version} issued at "
            f"{candidate.issued_at.isoformat()} is not newer than the one held (a replay)",
        )
    return True


def _instant(table: Table, key: str, *, required: bool = True) -> datetime | None:
    text = table.text(key, required=required, max_len=40)
    if text is None:
        if required:
            raise _refuse(f"{table.key(key)} must be an instant")
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise _refuse(f"{table.key(key)} has no time zone")
    return value


def _need_instant(table: Table, key: str) -> datetime:
    value = _instant(table, key)
    assert value is not None
    return value


def _entries(table: Table, key: str, limit: int) -> list[Table]:
    value = table.raw(key)
    if not isinstance(value, list) or len(value) > limit:
        raise _refuse(f"{table.key(key)} must be a list of at most {limit} entries")
    out = []
    for number, item in enumerate(value):
        if not isinstance(item, dict):
            raise _refuse(f"{table.key(key)}[{number}] must be an object")
        out.append(table.child(item, f"{table.key(key)}[{number}]"))
    return out


def _source(table: Table) -> str:
    value = table.raw("source")
    if not isinstance(value, str):
        raise _refuse(f"{table.key('source')} must be text")
    return value


def _profiles(
    root: Table,
) -> tuple[dict[tuple[ProfileId, int], Profile], dict[tuple[ProfileId, int], str]]:
    profiles: dict[tuple[ProfileId, int], Profile] = {}
    sources: dict[tuple[ProfileId, int], str] = {}
    for entry in _entries(root, "profiles", MAX_ISSUERS):
        source = _source(entry)
        profile = load_profile(source)
        said = (entry.need_text("id", max_len=64), entry.integer("version", low=1, high=2**31))
        if (profile.id, profile.version) != said or profile.source_sha256 != entry.need_text(
            "sha256", max_len=64
        ):
            raise _refuse(f"{entry.key('source')} is not the profile its entry names")
        entry.done()
        profiles[(profile.id, profile.version)] = profile
        sources[(profile.id, profile.version)] = source
    return profiles, sources


def _policies(root: Table) -> tuple[dict[str, Policy], dict[str, tuple[PolicyVersion, ...]]]:
    policies: dict[str, Policy] = {}
    versions: dict[str, tuple[PolicyVersion, ...]] = {}
    for entry in _entries(root, "policies", MAX_ISSUERS):
        source = _source(entry)
        policy = load_policy(source)
        destination = entry.need_text("destination", max_len=16)
        sha256 = entry.need_text("sha256", max_len=64)
        if (
            policy.id != entry.need_text("id", max_len=64)
            or policy.version != entry.integer("version", low=1, high=2**31)
            or policy.source_sha256 != sha256
            or policy.flags() != entry.raw("flags")
        ):
            raise _refuse(f"{entry.key('source')} is not the policy its entry names")
        entry.done()
        policies[destination] = policy
        versions[destination] = (
            PolicyVersion(destination, policy.version, policy.id, sha256, source),
        )
    return policies, versions


def _issuers(
    root: Table, profiles: dict[tuple[ProfileId, int], Profile]
) -> tuple[
    dict[IssuerId, Issuer],
    dict[tuple[IssuerId, KeyId], IssuerKey],
    dict[tuple[IssuerId, KeyId], Revocations],
    dict[IssuerId, Retirement],
]:
    issuers: dict[IssuerId, Issuer] = {}
    keys: dict[tuple[IssuerId, KeyId], IssuerKey] = {}
    revocations: dict[tuple[IssuerId, KeyId], Revocations] = {}
    retired: dict[IssuerId, Retirement] = {}
    for entry in _entries(root, "issuers", MAX_ISSUERS):
        issuer_id = IssuerId(entry.need_text("id", max_len=64))
        if not ISSUER_ID.fullmatch(issuer_id) or issuer_id in issuers:
            raise _refuse(f"{entry.key('id')} is malformed or listed twice")
        profile = entry.need_table("profile")
        said = (
            ProfileId(profile.need_text("id", max_len=64)),
            profile.integer("version", low=1, high=2**31),
        )
        if said not in profiles or profiles[said].source_sha256 != profile.need_text(
            "sha256", max_len=64
        ):
            raise _refuse(f"{entry.key('profile')} names no profile of the list")
        profile.done()
        online = _online(issuer_id, entry)
        entry.boolean("pseudonymous", default=False)  # its key is not in the list either
        issuers[issuer_id] = Issuer(
            issuer_id,
            parse_region_code(entry.need_text("region", max_len=16)),
            entry.need_text("name", max_len=256),
            said[0],
            said[1],
            online=online,
            code_name=entry.text("code_name", required=False),
        )
        for key_entry in _entries(entry, "keys", MAX_KEYS_PER_ISSUER):
            key, revoked = _key(issuer_id, key_entry)
            if (issuer_id, key.kid) in keys:
                raise _refuse(f"{key_entry.key('kid')} is listed twice")
            keys[(issuer_id, key.kid)] = key
            if revoked is not None:
                revocations[(issuer_id, key.kid)] = revoked
        retirement = entry.table("retired", required=False)
        if retirement is not None:
            retired[issuer_id] = Retirement(
                issuer_id,
                _need_instant(retirement, "at"),
                retirement.need_text("reason", max_len=1024),
            )
            retirement.done()
        entry.done()
    return issuers, keys, revocations, retired


def _online(issuer: IssuerId, entry: Table) -> OnlineEndpoint | None:
    """An online issuer's endpoint as the list signs it: its code prefix and verify URL, no
    credential (the replica secrets bring that). A list without the URL (an older hub's) leaves
    the endpoint unusable: its codes are sent nowhere."""
    prefix = entry.text("online_code_prefix", required=False, max_len=MAX_URL_CHARS)
    url = entry.text("online_verify_url", required=False, max_len=MAX_URL_CHARS)
    if prefix is None:
        if url is not None:
            raise _refuse(f"{entry.key('online_verify_url')} without an online_code_prefix")
        return None
    if not CODE_URL_PREFIX.fullmatch(prefix) or (
        url is not None and not SERVICE_URL.fullmatch(url)
    ):
        raise _refuse(f"{entry.key('online_code_prefix')} or its verify URL is malformed")
    if url is None:
        return OnlineEndpoint(
            prefix,
            "",
            "",
            b"",
            unusable=f"the signed trust list names no verify URL for online issuer {issuer} (a "
            "hub older than this replica): its codes are sent nowhere",
        )
    return OnlineEndpoint(prefix, url, "", b"")


def _key(issuer: IssuerId, entry: Table) -> tuple[IssuerKey, Revocations | None]:
    kid = KeyId(entry.need_text("kid", max_len=128))
    if not KEY_ID.fullmatch(kid):
        raise _refuse(f"{entry.key('kid')} is malformed")
    algorithm = entry.choice("alg", Algorithm)
    spki = base64.b64decode(entry.need_text("spki", max_len=4096), validate=True)
    usage = entry.raw("usage", required=False)
    if usage is not None:
        usage = frozenset(entry.text_list("usage", max_items=16))
    certificate = entry.text("certificate_sha256", required=False, max_len=64)
    key = IssuerKey(
        issuer,
        kid,
        load_spki_der(spki, algorithm),
        not_before=_instant(entry, "not_before", required=False),
        not_after=_instant(entry, "not_after", required=False),
        status=entry.choice("status", KeyStatus),
        status_since=_instant(entry, "status_since", required=False),
        usage=usage,
        certificate_sha256=bytes.fromhex(certificate) if certificate is not None else None,
    )
    listed = entry.table("revocations", required=False)
    revoked = None
    if listed is not None:
        ids = listed.raw("ids")
        if not isinstance(ids, dict) or len(ids) > MAX_REVOKED_IDS:
            raise _refuse(f"{listed.key('ids')} must be an object of at most {MAX_REVOKED_IDS}")
        instants = listed.child(ids, listed.key("ids"))
        revoked = Revocations(
            listed.integer("counter", low=0, high=2**62),
            MappingProxyType(
                {
                    rid: _instant(instants, rid) if ids[rid] is not None else instants.raw(rid)
                    for rid in ids
                }
            ),
        )
        instants.done()
        listed.done()
    entry.done()
    return key, revoked
