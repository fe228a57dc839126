"""The checkpoint page's words and files (issue 13)."""

from __future__ import annotations

from gateway.model import Reason
from gateway.recognise import DecisionReason
from gateway.web import words
from tests.conftest import REPO


def test_every_reason_has_plain_words_in_chinese_and_english():
    for lang in ("zh", "en"):
        table = words.reason_table(lang)
        for reason in [*Reason, *DecisionReason]:
            assert table[reason.value], (lang, reason)
            assert not table[reason.value].startswith(("ERR_", "REASON_"))
    assert words.reason_table("zh")["ERR_EXPIRED"] != words.reason_table("en")["ERR_EXPIRED"]


def test_the_served_files_exist_and_carry_no_absolute_paths():
    static = REPO / "gateway" / "web" / "static"
    for name in ("checkpoint.js", "checkpoint.css"):
        text = (static / name).read_text("utf-8")
        # This machine's folders (wherever the clone is), and no storage on the checkpoint.
        for forbidden in (
            str(REPO),
            str(REPO.parent) + "/",
            "localStorage",
            "sessionStorage",
            "cookie",
        ):
            assert forbidden not in text, (name, forbidden)


def test_the_page_language_falls_back_and_portuguese_is_macau_s():
    assert words.language(None, "310000") == "zh"
    assert words.language("en", "310000") == "en"
    assert words.language("pt", "310000") == "zh"
    assert words.language(None, "820000") == "pt"
    assert words.language("zh", "820000") == "zh"
    assert words.language("xx", "820000") == "pt"
