"""The live transcript's batching: few messages, each under Discord's 2000 characters."""

from __future__ import annotations

from bot.asr.transcriber import Transcript
from bot.discordbot.kit import chunk
from bot.discordbot.transcript import MAX_MESSAGES_PER_FLUSH, TranscriptPoster, transcript_line
from bot.pipeline import Speaker, UtteranceEvent


def _event(name: str, text: str, start: float = 61.0) -> UtteranceEvent:
    transcript = Transcript(
        text=text, language="en", language_probability=1.0, avg_logprob=-0.1, no_speech_prob=0.0, compression_ratio=1.0
    )
    return UtteranceEvent(Speaker("1", name), start, start + 1, start + 1.5, start + 2, transcript, 1)


def test_chunk_fills_messages_and_cuts_overlong_lines() -> None:
    lines = [f"line {i} " + "x" * 90 for i in range(50)]  # ~98 chars each
    messages = chunk(lines)
    assert all(len(m) <= 2000 for m in messages)
    assert len(messages) == 3  # 20 lines fit in one message
    assert "\n".join(messages).split("\n") == lines  # nothing lost, order kept
    long = chunk(["a" * 4500, "b"])
    assert [len(m) for m in long] == [2000, 2000, 502] and long[-1].endswith("\nb")


def test_markdown_in_names_and_text_is_escaped() -> None:
    line = transcript_line(_event("*bold*", "say `hi` @everyone"))
    assert line == "`01:01` **\\*bold\\***: say \\`hi\\` ＠everyone"


async def test_backlog_is_spread_over_intervals() -> None:
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    poster = TranscriptPoster(send, interval=5)
    for i in range(200):
        poster.on_utterance(_event("Ann", f"utterance number {i} " + "words " * 20))
    await poster.flush()
    assert len(sent) == MAX_MESSAGES_PER_FLUSH and poster.pending() > 0
    await poster.flush(None)  # the final flush at the end of a session sends everything
    assert poster.pending() == 0
    body = "\n".join(sent)
    assert all(f"utterance number {i} " in body for i in range(200))
    assert body.index("number 199 ") > body.index("number 0 ")
