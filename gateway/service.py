"""The verification service: the in-process API that every edge (gRPC, CLI, benchmarks) uses.

It owns nothing but references: the current trust snapshot (through a :class:`TrustHolder`), the
limits, the subject keys and the clock. Each call reads the clock and the snapshot exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from gateway.clock import Clock
from gateway.errors import RequestInvalid
from gateway.identity import SubjectKeys
from gateway.limits import Limits
from gateway.model import RegionCode, Verdict, parse_region_code
from gateway.registry import TrustHolder, TrustSnapshot
from gateway.verify import verify_code


def parse_destination(text: str) -> RegionCode | None:
    """An optional destination region from a request; empty means none.

    Raises:
        RequestInvalid: for anything but a GB/T 2260 region code.
    """
    if not text:
        return None
    try:
        return parse_region_code(text)
    except ValueError as e:
        raise RequestInvalid(f"destination: {e}") from e


class VerificationService:
    def __init__(
        self, trust: TrustHolder, limits: Limits, subjects: SubjectKeys, clock: Clock
    ) -> None:
        self.trust = trust
        self.limits = limits
        self._subjects = subjects
        self._clock = clock

    def verify(self, code: str, destination: str = "") -> Verdict:
        """Verify one code now, against the current trust snapshot."""
        where = parse_destination(destination)
        return verify_code(
            code,
            trust=self.trust.current,
            now=self._clock(),
            limits=self.limits,
            subjects=self._subjects,
            destination=where,
        )

    def verify_batch(self, codes: Sequence[str], destination: str = "") -> Iterator[Verdict]:
        """Verify up to ``limits.max_batch`` codes at one instant against one snapshot.

        The request is validated at once; the verdicts are produced lazily, in order, so that an
        asynchronous caller can yield between them. Identical code strings are verified once and
        share the verdict.

        Raises:
            RequestInvalid: for an empty batch, one over the limit, or a bad destination.
        """
        if not codes:
            raise RequestInvalid("a batch needs at least one code")
        if len(codes) > self.limits.max_batch:
            raise RequestInvalid(
                f"a batch holds at most {self.limits.max_batch} codes, this one {len(codes)}"
            )
        where = parse_destination(destination)
        return self._batch(codes, where, self.trust.current, self._clock())

    def _batch(
        self, codes: Sequence[str], where: RegionCode | None, trust: TrustSnapshot, now: datetime
    ) -> Iterator[Verdict]:
        verdicts: dict[str, Verdict] = {}
        for code in codes:
            verdict = verdicts.get(code)
            if verdict is None:
                verdict = verify_code(
                    code,
                    trust=trust,
                    now=now,
                    limits=self.limits,
                    subjects=self._subjects,
                    destination=where,
                )
                verdicts[code] = verdict
            yield verdict
