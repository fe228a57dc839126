"""How a region's traveller page looks and speaks: its name, colours and state words, per language.

Pure data, checked once when a region's look is built (:meth:`Look.__post_init__`): every
language has every word, every level the region issues has its panel. The page itself is
:mod:`regions.common.pages`.

Colour panels are chosen so that their text meets WCAG 2.x AA (contrast ratio >= 4.5:1 for body
text); :func:`contrast` computes the ratio and the browser tests check it on the rendered page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from regions.common.spec import Level

Language = str
"""``zh`` (Chinese, always first), ``en``, ``pt`` (Macau)."""


@dataclass(frozen=True, slots=True)
class Panel:
    """The colour frame around a QR code and the panel behind the state word."""

    background: str
    """``#rrggbb``."""
    text: str
    shape: str
    """``circle`` (pass), ``triangle`` (caution), ``octagon`` (stop), ``hourglass`` (pending):
    the icon beside the word, so that colour is never the only signal."""
    icon: str
    """A character drawn inside the shape."""


GREEN = Panel("#17753a", "#ffffff", "circle", "✓")
BLUE = Panel("#1559b0", "#ffffff", "circle", "✓")
YELLOW = Panel("#f5c518", "#1a1a1a", "triangle", "!")
RED = Panel("#b42318", "#ffffff", "octagon", "✕")
GREY = Panel("#5b616b", "#ffffff", "hourglass", "…")
EXPIRED = Panel("#5b616b", "#ffffff", "square", "—")

STANDARD_PANELS: Mapping[Level, Panel] = MappingProxyType(
    {Level.GREEN: GREEN, Level.YELLOW: YELLOW, Level.RED: RED, Level.PENDING: GREY}
)


@dataclass(frozen=True, slots=True)
class Look:
    """A region's page: its name and words in each of its languages, its colours."""

    languages: tuple[Language, ...]
    """Chinese first; the page offers the others as links (``?lang=``)."""
    name: Mapping[Language, str]
    tagline: Mapping[Language, str]
    accent: str
    """The header's background (white text on it)."""
    states: Mapping[Level, Mapping[Language, str]]
    """The word shown for each level, in each language."""
    mask: tuple[int, int]
    """How many leading and trailing characters of the identity number the page shows."""
    panels: Mapping[Level, Panel] = field(default_factory=lambda: STANDARD_PANELS)
    appeals: bool = True
    """Whether the page offers the appeal form (every region's API takes appeals)."""

    def __post_init__(self) -> None:
        if not self.languages or self.languages[0] != "zh":
            raise ValueError("a page speaks Chinese first")
        for words in (self.name, self.tagline, *self.states.values()):
            missing = set(self.languages) - set(words)
            if missing:
                raise ValueError(f"words missing for {sorted(missing)}")
        if set(self.states) != set(Level) or set(self.panels) != set(Level):
            raise ValueError("every level needs a word and a panel")
        head, tail = self.mask
        if head < 0 or tail < 1 or head + tail > 10:
            raise ValueError("a masked number shows at most 10 of its characters")

    def language(self, asked: str | None) -> Language:
        """The language ``asked`` for if the page speaks it, else Chinese."""
        return asked if asked in self.languages else self.languages[0]


def standard_states(zh: tuple[str, str, str, str]) -> Mapping[Level, Mapping[Language, str]]:
    """Green, yellow, red and pending words: ``zh`` as given, English and Portuguese standard."""
    en = ("Green", "Yellow", "Red", "Under review")
    pt = ("Verde", "Amarelo", "Vermelho", "Em análise")
    return {
        level: {"zh": z, "en": e, "pt": p}
        for level, z, e, p in zip(
            (Level.GREEN, Level.YELLOW, Level.RED, Level.PENDING), zh, en, pt, strict=True
        )
    }


def _linear(channel: int) -> float:
    c = channel / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: tuple[int, int, int]) -> float:
    """Relative luminance (WCAG 2.x) of an sRGB colour."""
    r, g, b = (_linear(c) for c in colour)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """The WCAG contrast ratio of two sRGB colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def rgb(hex_colour: str) -> tuple[int, int, int]:
    value = hex_colour.lstrip("#")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
