"""The dry run behind ``huren profile test``: sample codes against one profile and one issuer's
public keys, before anything is registered.

The codes go through the real pipeline (:func:`gateway.verify.verify_code`, with a
:class:`~gateway.trace.Trace`) over a trust snapshot that holds only this profile, one issuer and
its keys, built in memory through :class:`~gateway.registry.TrustState`'s own checks (a key the
registry would refuse for this profile is refused here too). Nothing here reads a clock, a file
or the network: the caller passes the instant, the keys and the identity secrets.

What a registration would fix and a dry run cannot know is assumed, and said so
(:attr:`Trial.assumed`): the issuer is what the code names unless the caller says otherwise, and
so is its region where the profile reads one from codes (EU DCC), else :data:`NO_REGION`.
An online profile cannot be tried: its codes are verified by asking their issuer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.errors import CodeRejected, ConfigurationInvalid
from gateway.identity import IdentityKeys, IdentityScheme
from gateway.limits import Limits
from gateway.model import IssuerId, ProfileId, Reason, RegionCode, Verdict, parse_region_code
from gateway.profiles import EnvelopeFormat, Profile
from gateway.registry import Issuer, TrustSnapshot, TrustState
from gateway.registry.keyfiles import KeyEntry
from gateway.registry.model import CODE_NAME, ISSUER_ID, Region
from gateway.trace import StepRecord, Trace, shown
from gateway.verify import open_envelope, screen, verify_code

NO_REGION = RegionCode("XX")
"""The region of a dry run's issuer when nothing says one: ISO 3166's user-assigned ``XX``,
which names no real country or region."""


@dataclass(frozen=True, slots=True)
class Trial:
    """One code's dry run: its verdict, every step the pipeline ran, and what was assumed."""

    verdict: Verdict
    steps: tuple[StepRecord, ...]
    assumed: tuple[str, ...]


class DryRun:
    """Sample codes against ``profile`` (loaded from ``profile_text``) and ``keys``.

    Raises (when made):
        ConfigurationInvalid: ``ERR_PROFILE`` for an online profile, or a pseudonym profile
            without its key; ``ERR_IDENTIFIER`` for a malformed issuer name or region; what the
            registry says of a key it would refuse for this profile (``ERR_ALG_NOT_ALLOWED``,
            a key id that is not the key's thumbprint ...).
    """

    def __init__(
        self,
        profile: Profile,
        profile_text: str,
        keys: Sequence[KeyEntry],
        *,
        issuer: str | None = None,
        region: str | None = None,
        pseudonym_key: bytes | None = None,
        limits: Limits | None = None,
    ) -> None:
        if profile.envelope.format is EnvelopeFormat.ONLINE:
            raise ConfigurationInvalid(
                Reason.ERR_PROFILE,
                f"profile {profile.label} is an online profile: its codes are verified by asking "
                "their issuer, which a dry run cannot do (register the issuer, then use "
                "huren verify)",
            )
        if profile.identity.scheme is IdentityScheme.PSEUDONYM and pseudonym_key is None:
            raise ConfigurationInvalid(
                Reason.ERR_PROFILE,
                f"profile {profile.label} carries identity numbers sealed as pseudonyms: a dry run "
                "needs the issuer's pseudonym key to open them (--pseudonym-key-file)",
            )
        if issuer is not None and not CODE_NAME.fullmatch(issuer):
            raise ConfigurationInvalid(
                Reason.ERR_IDENTIFIER, "--issuer must be 1-256 printable ASCII characters"
            )
        try:
            self._region = parse_region_code(region) if region is not None else None
        except ValueError as e:
            raise ConfigurationInvalid(Reason.ERR_IDENTIFIER, str(e)) from e
        self._profile, self._text, self._keys = profile, profile_text, tuple(keys)
        self._issuer, self._pseudonym_key = issuer, pseudonym_key
        self._limits = limits or Limits()
        # What the registry would refuse (a key of an algorithm the profile does not allow, a
        # pseudonym profile without its key) is refused now, before any code.
        self._snapshot(issuer or profile.id, self._region or NO_REGION)

    def run(self, code: str, *, now: datetime, identities: IdentityKeys) -> Trial:
        """Verify ``code`` as of ``now``. Never raises: a refusal is the verdict's."""
        assumed = []
        name = self._issuer
        if name is None:
            named = self._read(code, "issuer")
            name = named if named is not None and CODE_NAME.fullmatch(named) else self._profile.id
            if named is None:
                assumed.append(f"issuer {name!r}: the profile's id (--issuer names another)")
            else:
                assumed.append(
                    f"issuer {shown(name)}: as the code names it, unauthenticated (--issuer "
                    "checks the name)"
                )
        region = self._region
        if region is None:
            region = self._code_region(code)
            if region is None:
                assumed.append(f"region {NO_REGION}: none given (--region names one)")
                region = NO_REGION
            else:
                assumed.append(
                    f"region {region}: as the code names it, unauthenticated (--region checks it)"
                )
        try:
            snapshot = self._snapshot(name, region)
        except ConfigurationInvalid:
            # The name the code gives cannot be an issuer's: try it as the profile's own, and
            # let the pipeline say that the code names another issuer.
            snapshot = self._snapshot(self._profile.id, region)
        trace = Trace()
        verdict = verify_code(
            code, trust=snapshot, now=now, limits=self._limits, identities=identities, trace=trace
        )
        return Trial(verdict, trace.steps, tuple(assumed))

    def _snapshot(self, name: str, region: RegionCode) -> TrustSnapshot:
        """This profile, one issuer (``name`` is what its codes call it) and its keys."""
        profile = self._profile
        as_id = ISSUER_ID.fullmatch(name) is not None
        issuer = Issuer(
            IssuerId(name if as_id else profile.id),
            region,
            "dry run",
            ProfileId(profile.id),
            profile.version,
            pseudonym_key=self._pseudonym_key,
            code_name=None if as_id else name,
        )
        state = TrustState()
        state.add_region(Region(region, "dry run"))
        state.add_profile(profile, self._text)
        state.add_issuer(issuer)
        for entry in self._keys:
            state.add_key(entry.of(issuer.id))
        return state.snapshot()

    def _read(self, code: str, what: str) -> str | None:
        """The text a code holds where the profile reads ``what`` (``issuer`` or ``region``),
        before anything is verified; None if it holds none or cannot be opened (verification
        then says why)."""
        path = self._profile.issuer if what == "issuer" else self._profile.issuer_region
        if path is None:
            return None
        try:
            screen(code, self._limits)
            claims = open_envelope(code, self._profile.envelope, self._limits).claims
        except CodeRejected:
            return None
        value = path.get(claims)
        return value if isinstance(value, str) else None

    def _code_region(self, code: str) -> RegionCode | None:
        named = self._read(code, "region")
        try:
            return parse_region_code(named) if named is not None else None
        except ValueError:
            return None
