"""The replayed calls the other tests stand on are real transcripts of the speech."""

from __future__ import annotations

from storage import get_session
from tests.calls import cer, wer


def test_english_and_mandarin_calls_are_transcribed(ro_db, library) -> None:
    en = get_session(ro_db, library.ids["en_g1"])
    zh = get_session(ro_db, library.ids["zh_g1"])
    assert {u.speaker for u in en.utterances} == {"alice", "bob"}
    assert {u.speaker for u in zh.utterances} == {"李娜", "张伟"}
    en_text = " ".join(u.text for u in en.utterances)
    assert wer([" ".join(t for _, t in library.english_script)], [en_text]) < 0.35
    zh_text = "".join(u.text for u in zh.utterances)
    assert cer(["".join(t for _, t in library.mandarin_script)], [zh_text]) < 0.6
    assert all(u.language == "zh" for u in zh.utterances)
    ko = get_session(ro_db, library.ids["ko_g3"])
    assert {u.speaker for u in ko.utterances} == {"민지", "서준"}
    ko_text = "".join(u.text for u in ko.utterances)
    assert cer(["".join(t for _, t in library.korean_script)], [ko_text]) < 0.4
