"""The state record: the registry's last audit entry and trust version, kept *beside* the
database in a small file signed with the hub's trust-list key, rewritten after every commit.

It makes trust monotonic across restarts: a ``registry.db`` that is empty, shorter than the
record, on another history, or at a lower trust version (a file replaced by an older backup, or
truncated) is refused until the administrator accepts the rollback explicitly, which is audited
(``huren registry accept-rollback``). It does not defend against whoever holds the trust-list
key and the file together; operators.md says to anchor the chain's head elsewhere as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from gateway.crypto import PrivateKey
from gateway.errors import ConfigurationInvalid, RegistryDamaged
from gateway.storage.secrets import replace_atomically
from gateway.trustlist import sign, verify

TYPE = "huren-registry-state+jwt"


@dataclass(frozen=True, slots=True)
class StateMark:
    """Where the registry stood after a commit."""

    seq: int
    head: str
    trust_version: int
    at: datetime


class StateRecord:
    """The signed state record at ``path``."""

    def __init__(self, path: Path, key: PrivateKey) -> None:
        self.path = path
        self._key = key

    def read(self) -> StateMark | None:
        """The recorded state, or None if there is no record yet.

        Raises:
            RegistryDamaged: if the record is unreadable, malformed or not signed by the key.
        """
        try:
            text = self.path.read_text("ascii")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as e:
            raise RegistryDamaged(f"the state record {self.path.name} cannot be read ({e})") from e
        try:
            content = verify(text, self._key.public_key(), TYPE)
            return StateMark(
                int(content["seq"]),
                str(content["head"]),
                int(content["trust_version"]),
                datetime.fromisoformat(str(content["at"])),
            )
        except (ConfigurationInvalid, KeyError, ValueError, TypeError) as e:
            raise RegistryDamaged(
                f"the state record {self.path.name} does not verify ({e}); it is not the hub's"
            ) from e

    def write(self, mark: StateMark) -> None:
        content = {
            "seq": mark.seq,
            "head": mark.head,
            "trust_version": mark.trust_version,
            "at": mark.at.isoformat(),
        }
        replace_atomically(self.path, (sign(content, self._key, TYPE) + "\n").encode(), 0o600)

    def advance(self, mark: StateMark) -> None:
        """Write ``mark`` unless the record already names a later entry: two processes that
        commit one after the other may rewrite the record in the other order, and the record
        never goes back."""
        try:
            current = self.read()
        except RegistryDamaged:
            current = None  # the commit just verified the registry: this mark is the truth
        if current is None or current.seq < mark.seq:
            self.write(mark)
