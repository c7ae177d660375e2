"""Korean, Mandarin and Russian calls through the pipeline with the multilingual base model."""

from __future__ import annotations

import io

import pytest

from bot.replay import Track, replay
from storage import get_session, open_database
from storage.script import has_han, to_script
from tests.bounds import at_most
from tests.calls import build_call, cer, korean_refs, shared, texts_by_turn

pytestmark = pytest.mark.slow

# Characters written differently in the two scripts (checked against OpenCC's tables when
# written), common in news Mandarin like the shared clips: one script's text has none of the other's.
TRADITIONAL_ONLY = "廣協會產國們這個來時說對與間現幾車過還發長開關億區價業場"
SIMPLIFIED_ONLY = "广协会产国们这个来时说对与间现几车过还发长开关亿区价业场"


def replay_call(config, tracks, tmp_path, transcriber, language):
    config = config.replace("asr", language=language)
    summary = replay(
        config,
        [Track(n, str(p)) for n, p in tracks.items()],
        db_url=str(tmp_path / "ml.db"),
        speed=0,
        out=io.StringIO(),
        transcriber=transcriber,
        language=language,
    )
    db = open_database(str(tmp_path / "ml.db"))
    detail = get_session(db, summary.session_id)
    db.close()
    return detail


@pytest.fixture(scope="module")
def korean_call(tmp_path_factory):
    """Two Common Voice speakers (민지, 서준) taking turns, three sentences each."""
    rows = korean_refs()
    by_speaker: dict[str, list] = {}
    for file, speaker, text in rows:
        by_speaker.setdefault(speaker, []).append((file, text))
    a, b = [s for s, items in by_speaker.items() if len(items) >= 3][:2]
    script = []
    for i in range(3):
        for name, spk in (("민지", a), ("서준", b)):
            file, text = by_speaker[spk][i]
            script.append((name, shared("data", "korean", file), text))
    return build_call(tmp_path_factory.mktemp("ko"), script)


@pytest.mark.parametrize("language", ["auto", "ko,en"])
def test_korean_call_is_transcribed_in_korean(korean_call, tmp_path, config, base_model, language):
    tracks, placed = korean_call
    detail = replay_call(config, tracks, tmp_path, base_model, language)
    assert {u.speaker for u in detail.utterances} == {"민지", "서준"}
    assert all(u.language == "ko" for u in detail.utterances)
    ours = texts_by_turn(detail.utterances, placed)
    # Plain faster-whisper base on the same files, language detected, as the shared data's
    # README measured it (17% CER over all 59 files).
    plain = []
    for p in placed:
        segs, info = base_model.model.transcribe(str(shared("data", "korean", p.source)), beam_size=1)
        plain.append(" ".join(s.text for s in segs))
    refs = [p.text for p in placed]
    at_most("multilingual.korean.cer_above_plain", cer(refs, ours) - cer(refs, plain), 0.03)
    at_most("multilingual.korean.cer", cer(refs, ours), 0.4)  # base is weak on Korean; the comparison is the check


def test_mandarin_and_russian_speakers_in_one_call(tmp_path, config, base_model):
    """Each speaker keeps their own language when the call is detected per utterance."""
    zh = [
        row.split("\t") for row in shared("data", "chinese", "trans.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    ru = [
        row.split("\t") for row in shared("data", "russian", "trans.tsv").read_text(encoding="utf-8").splitlines()[1:]
    ]
    script = []
    for i in range(2):
        script.append(("李娜", shared("data", "chinese", zh[i][0]), zh[i][1]))
        script.append(("Olga", shared("data", "russian", ru[i][0]), ru[i][1]))
    tracks, placed = build_call(tmp_path, script)
    detail = replay_call(config, tracks, tmp_path, base_model, "auto")
    langs = {u.speaker: {x.language for x in detail.utterances if x.speaker == u.speaker} for u in detail.utterances}
    assert langs == {"李娜": {"zh"}, "Olga": {"ru"}}
    ours = texts_by_turn(detail.utterances, placed)
    plain = []
    for p in placed:
        folder = "chinese" if p.speaker == "李娜" else "russian"
        segs, _ = base_model.model.transcribe(str(shared("data", folder, p.source)), beam_size=1)
        plain.append(" ".join(s.text for s in segs))
    # Whisper often writes Mandarin in traditional characters where the references are
    # simplified, so compare with plain faster-whisper rather than against a fixed bar.
    refs = [p.text for p in placed]
    at_most("multilingual.zh_ru.cer_above_plain", cer(refs, ours) - cer(refs, plain), 0.08)
    at_most("multilingual.zh_ru.cer", cer(refs, ours), 0.6)
    # Stored and exported as written, not escaped or mangled.
    from storage import session_to_json

    exported = session_to_json(detail)
    assert any("李娜" == u["speaker"] for u in exported["utterances"])
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in u["text"]) for u in exported["utterances"])
    # Stored in Simplified, the default script for zh, whatever script Whisper wrote.
    chinese = "".join(u.text for u in detail.utterances if u.language == "zh")
    assert not set(chinese) & set(TRADITIONAL_ONLY), chinese


@pytest.mark.parametrize("script", ["simplified", "traditional"])
def test_mandarin_is_stored_in_the_configured_script(tmp_path, config, base_model, script):
    """Whisper base writes these clips partly in Traditional: what is stored is in one script."""
    rows = [r.split("\t") for r in shared("data", "chinese", "trans.tsv").read_text(encoding="utf-8").splitlines()[1:]]
    tracks, placed = build_call(tmp_path, [("李娜", shared("data", "chinese", f), text) for f, text in rows])
    detail = replay_call(config.replace("asr", chinese_script=script), tracks, tmp_path, base_model, "zh")
    chinese = "".join(u.text for u in detail.utterances)
    assert sum(map(has_han, chinese)) >= 20, chinese  # three sentences, 55 characters said
    other = TRADITIONAL_ONLY if script == "simplified" else SIMPLIFIED_ONLY
    assert not set(chinese) & set(other), chinese
    assert to_script(chinese, script) == chinese
    if script == "simplified":  # the references are Simplified; measured 0.11 (55 characters)
        at_most(
            "multilingual.zh_simplified.cer",
            cer([p.text for p in placed], texts_by_turn(detail.utterances, placed)),
            0.3,
        )
