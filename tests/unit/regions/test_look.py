"""Every region's page has its words in every language it speaks, and colours that meet WCAG AA."""

from __future__ import annotations

import pytest

from regions import REGIONS, look_of
from regions.common.look import GREEN, YELLOW, Look, contrast, rgb, standard_states
from regions.common.spec import Level
from regions.common.words import JS_WORDS, WORDS

AA = 4.5


@pytest.mark.parametrize("name", REGIONS)
def test_panels_and_header_meet_wcag_aa(name):
    look = look_of(name)
    assert contrast(rgb(look.accent), (255, 255, 255)) >= AA
    for level, panel in look.panels.items():
        assert contrast(rgb(panel.background), rgb(panel.text)) >= AA, level
        assert panel.shape, level  # colour is never the only signal
        assert panel.icon, level


@pytest.mark.parametrize("name", REGIONS)
def test_each_level_has_its_own_shape(name):
    shapes = [look_of(name).panels[level].shape for level in Level]
    assert len(set(shapes)) == len(shapes)


def test_shared_words_exist_in_every_language():
    for key, texts in WORDS.items():
        assert set(texts) == {"zh", "en", "pt"}, key
    assert set(JS_WORDS) <= set(WORDS)


def test_macau_speaks_portuguese_and_every_page_chinese_first():
    assert look_of("macau").languages == ("zh", "pt", "en")
    assert all(look_of(name).languages[0] == "zh" for name in REGIONS)


def test_contrast_matches_the_wcag_reference_values():
    assert contrast((0, 0, 0), (255, 255, 255)) == pytest.approx(21.0)
    assert contrast((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)
    assert contrast(rgb(GREEN.background), rgb(YELLOW.background)) < AA


def test_a_look_missing_words_is_refused_when_built():
    with pytest.raises(ValueError, match="missing"):
        Look(
            ("zh", "pt"),
            {"zh": "码"},
            {"zh": "", "pt": ""},
            "#000000",
            standard_states(("a", "b", "c", "d")),
            (1, 1),
        )
    with pytest.raises(ValueError, match="Chinese first"):
        Look(
            ("en",),
            {"en": "x"},
            {"en": ""},
            "#000000",
            standard_states(("a", "b", "c", "d")),
            (1, 1),
        )
    with pytest.raises(ValueError, match="at most 10"):
        Look(
            ("zh",),
            {"zh": "x"},
            {"zh": ""},
            "#000000",
            standard_states(("a", "b", "c", "d")),
            (6, 6),
        )
