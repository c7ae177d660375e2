"""The hallucination filter: Whisper's inventions on silence and noise are dropped, real speech never.

The phrases below are the ones Whisper is known to produce on non-speech (subtitle credits
from its training video); the real speech is every reference transcript in ../shared/data,
scored with its real gzip compression ratio. The last tests run the real multilingual base
model on digital silence and low noise, which is why the filter exists.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from faster_whisper.transcribe import get_compression_ratio

from bot.asr.hallucination import FilterOptions, rejection_reason, repeated_ngram

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("STALK_SHARED_DIR", REPO.parent / "shared"))
DATA = SHARED / "data"

# What Whisper reports for a clearly heard utterance.
CONFIDENT = dict(avg_logprob=-0.3, no_speech_prob=0.05)


DEFAULT_OPTIONS = FilterOptions()


def reason(
    text: str,
    *,
    avg_logprob: float = -0.3,
    no_speech_prob: float = 0.05,
    compression_ratio: float | None = None,
    options: FilterOptions = DEFAULT_OPTIONS,
) -> str | None:
    ratio = get_compression_ratio(text) if compression_ratio is None else compression_ratio
    return rejection_reason(
        text, avg_logprob=avg_logprob, no_speech_prob=no_speech_prob, compression_ratio=ratio, options=options
    )


# -- known phrases --------------------------------------------------------------------------

KNOWN = [
    # English
    "Thanks for watching!",
    "Thank you for watching.",
    "Thank you so much for watching!",
    "Thank you very much for watching.",
    "Please subscribe to my channel.",
    "Like and subscribe!",
    "I'll see you in the next video.",
    "Subtitles by the Amara.org community",
    "Thanks for watching. Please subscribe.",
    "Thank you for watching! Don't forget to like and subscribe.",
    # Korean
    "시청해주셔서 감사합니다.",
    "시청해 주셔서 감사합니다!",
    "끝까지 시청해주셔서 감사합니다.",
    "MBC 뉴스 이덕영입니다.",
    "MBC뉴스 김성현입니다",
    "KBS 뉴스 홍길동입니다.",
    "구독과 좋아요 부탁드립니다!",
    "다음 영상에서 만나요.",
    "시청해주셔서 감사합니다. 구독과 좋아요 부탁드립니다.",
    # Chinese
    "字幕由Amara.org社区提供",
    "请不吝点赞 订阅 转发 打赏支持明镜与点点栏目",
    "谢谢观看!",
    "感谢观看。",
    "谢谢大家观看",
    "字幕by索兰娅",
    "优优独播剧场——YoYo Television Series Exclusive",
    "明镜需要您的支持 欢迎订阅明镜",
    # Japanese
    "ご視聴ありがとうございました",
    "ご視聴ありがとうございました。",
    "チャンネル登録よろしくお願いします!",
    "ご覧いただきありがとうございます",
    # Others Whisper prints on silence
    "Продолжение следует...",
    "Субтитры сделал DimaTorzok",
    "Untertitel der Amara.org-Community",
]


@pytest.mark.parametrize("text", KNOWN)
def test_known_phrases_are_dropped_even_when_whisper_is_confident(text: str) -> None:
    why = reason(text)
    assert why is not None and why.startswith("known hallucination"), why


@pytest.mark.parametrize(
    "text",
    [
        "Thanks for watching the game with me yesterday.",
        "I watched the news on MBC yesterday, did you?",
        "Please subscribe me to the mailing list.",
    ],
)
def test_phrases_inside_real_sentences_are_kept(text: str) -> None:
    assert reason(text) is None


def test_the_phrase_list_can_be_switched_off() -> None:
    off = FilterOptions(known_phrases=False)
    assert reason("Thanks for watching!", options=off) is None
    assert reason("MBC 뉴스 이덕영입니다.", options=off) is None


@pytest.mark.parametrize("text", ["Thank you.", "감사합니다.", "Bye.", "you"])
def test_short_acknowledgements_are_kept_when_clearly_heard_and_dropped_when_doubtful(text: str) -> None:
    assert reason(text) is None
    assert reason(text, no_speech_prob=0.45) is not None
    assert reason(text, avg_logprob=-0.9) is not None


# -- repetition loops -------------------------------------------------------------------------

LOOPS = [
    ("I'm going to go. I'm going to go. I'm going to go. I'm going to go.", "i m going to go"),
    ("So we need to talk about the the the the the the budget", "the"),
    ("and then and then and then and then and then", "and then"),
    ("哈哈哈哈哈哈哈哈", "哈"),
    ("我们走吧我们走吧我们走吧我们走吧", "我们走吧"),
    ("아아아아아아아아아", "아"),
    ("네 네 네 네 네 네", "네"),
    ("감사합니다 감사합니다 감사합니다 감사합니다", "감사합니다"),
    ("ありがとうありがとうありがとうありがとう", "ありがとう"),
]


@pytest.mark.parametrize(("text", "gram"), LOOPS)
def test_repetition_loops_are_dropped(text: str, gram: str) -> None:
    assert repeated_ngram(text) == gram
    # Judged on the text alone: the compression ratio of these short loops is under the limit.
    why = reason(text, compression_ratio=1.0)
    assert why is not None and why.startswith("repetition loop"), why


@pytest.mark.parametrize(
    "text",
    [
        "No, no, no, no.",
        "very very very good",
        "It costs $1,000,000.",
        "1000000",
        "Call 555-5555.",
        "Noooooo!",
        "Sooooo good.",
        "We'll see, we'll see.",
        "好好学习，天天向上",
        "하나 둘 셋 넷",
    ],
)
def test_ordinary_repetition_in_speech_is_kept(text: str) -> None:
    assert repeated_ngram(text) is None
    assert reason(text) is None


def test_high_compression_ratio_is_dropped() -> None:
    text = "We talked about the plan and then we talked about the plan again. " * 6
    ratio = get_compression_ratio(text)
    assert ratio > 2.4
    why = reason(text, compression_ratio=ratio)
    assert why == f"repetitive (compression ratio {ratio:.1f})"
    # A 13-word phrase is longer than the n-grams the loop check looks for: only the ratio catches it.
    assert reason(text, compression_ratio=ratio, options=FilterOptions(compression_ratio_threshold=10.0)) is None


def test_no_speech_with_low_confidence_is_dropped_but_either_alone_is_not() -> None:
    text = "I think we should move the meeting to Friday."
    assert reason(text, no_speech_prob=0.9, avg_logprob=-1.4).startswith("no speech")
    assert reason(text, no_speech_prob=0.9, avg_logprob=-0.4) is None  # quiet but clearly decoded
    assert reason(text, no_speech_prob=0.1, avg_logprob=-1.4) is None  # speech, hard to decode
    strict = FilterOptions(no_speech_threshold=0.3, log_prob_threshold=-0.5)
    assert reason(text, no_speech_prob=0.4, avg_logprob=-0.6, options=strict).startswith("no speech")


def test_empty_and_punctuation_only_text_is_dropped() -> None:
    assert reason("") == "empty"
    assert reason(" ... ") == "empty"
    assert reason("♪♪") == "empty"


# -- real speech is never rejected -----------------------------------------------------------


def _references() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for rel in (
        "librispeech/trans.tsv",
        "korean/trans.tsv",
        "chinese/trans.tsv",
        "misc/speechbrain_asr/transcripts.tsv",
    ):
        with open(DATA / rel, encoding="utf-8", newline="") as f:
            for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                if len(row) < 2 or row[0] == "file":
                    continue
                rows.append((f"{rel.split('/')[-2]}/{row[0]}", row[-1]))
    return rows


REFERENCES = _references()


def test_every_corpus_is_read() -> None:
    corpora = {key.split("/")[0] for key, _ in REFERENCES}
    assert corpora == {"librispeech", "korean", "chinese", "speechbrain_asr"}
    assert len(REFERENCES) >= 60 + 59 + 3 + 10


@pytest.mark.parametrize(("key", "text"), REFERENCES, ids=[k for k, _ in REFERENCES])
def test_reference_transcripts_pass_with_ordinary_confidence(key: str, text: str) -> None:
    # As Whisper would write it: sentence case, not LibriSpeech's capitals.
    shown = text.capitalize() if text.isupper() else text
    for variant in {text, shown}:
        assert reason(variant, avg_logprob=-0.3, no_speech_prob=0.05) is None, key


# -- the real model on non-speech ------------------------------------------------------------


@pytest.fixture(scope="module")
def base():
    from bot.asr.model import load_whisper
    from bot.asr.transcriber import WhisperTranscriber

    model = load_whisper(str(SHARED / "models" / "whisper-base"), workers=1)
    return WhisperTranscriber(model, "base")


FIVE_SECONDS = 16000 * 5


@pytest.mark.parametrize(
    ("audio", "language"),
    [
        ("silence", None),
        ("silence", "ko"),
        ("noise", None),
        ("noise", "en"),
    ],
)
@pytest.mark.slow
def test_whisper_output_on_silence_and_noise_is_not_kept(base, audio: str, language: str | None) -> None:
    from bot.asr.transcriber import DecodeOptions, Request

    if audio == "silence":
        samples = np.zeros(FIVE_SECONDS, dtype=np.float32)
    else:
        # -50 dBFS white noise: a quiet room through an open microphone.
        samples = (np.random.default_rng(5).standard_normal(FIVE_SECONDS) * 10 ** (-50 / 20)).astype(np.float32)
    transcript = base.transcribe(Request(samples), DecodeOptions(language=language))
    # Whisper does write something here ("you", "이 영상은 ..."); the filter must drop it.
    assert transcript.text.strip(), "Whisper produced nothing: this test no longer exercises the filter"
    assert not transcript.kept, f"kept {transcript.text!r} ({transcript})"
    print(f"{audio}/{language}: {transcript.text!r} dropped: {transcript.rejected}")
