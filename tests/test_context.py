"""The call context that conditions each utterance, and its guards, on fixed reference text."""

from __future__ import annotations

from bot.asr.context import CallContext, ContextOptions, Line, is_echo, prompt_text

# LibriSpeech test-other references (trans.tsv), as a call's lines.
A = "FORTUNATELY WARNER AND THE DETECTIVES WERE KEEPING BACHELOR HALL IN THE LODGE"
B = "THE RECITER THEN READ THE LIST AGAIN"
C = "AND THEY WENT ON TOGETHER TOWARDS THE VILLAGE"


def line(speaker: str, start: float, text: str, language: str = "en") -> Line:
    return Line(speaker, start, start + 2.0, language, text)


def test_recent_lines_before_the_utterance_with_the_speakers_own_kept_in() -> None:
    ctx = CallContext(ContextOptions(lines=2, own_lines=1))
    ctx.add(line("alice", 0.0, A))
    ctx.add(line("bob", 3.0, B))
    ctx.add(line("carol", 6.0, C))
    # Alice's own last line is older than the two most recent ones: it is kept, in call order.
    assert [x.text for x in ctx.before("alice", 9.0)] == [A, B, C]
    assert [x.text for x in ctx.before("bob", 9.0)] == [B, C]
    # Only what was said before the utterance began.
    assert [x.text for x in ctx.before("carol", 5.0)] == [A, B]
    assert ctx.before("carol", 0.0) == ()


def test_out_of_order_results_keep_call_order_and_lines_are_bounded() -> None:
    ctx = CallContext(ContextOptions(lines=3, own_lines=0, memory=3))
    for i in (4, 1, 3, 0, 2):
        ctx.add(line("alice", float(i), f"line number {i}"))
    assert [x.start for x in ctx.before("bob", 10.0)] == [2.0, 3.0, 4.0]


def test_repetitive_duplicate_and_empty_lines_do_not_condition() -> None:
    ctx = CallContext()
    assert ctx.add(line("alice", 0.0, A))
    assert not ctx.add(line("bob", 2.0, A.lower() + "."))  # the same line again, cased and punctuated
    assert not ctx.add(line("bob", 4.0, "the the the the the the the the"), compression_ratio=2.3)
    assert not ctx.add(line("bob", 6.0, "  "))
    assert [x.text for x in ctx.before("carol", 10.0)] == [A]


def test_disabled_context_and_forgotten_speakers_give_nothing() -> None:
    off = CallContext(ContextOptions(enabled=False))
    assert not off.add(line("alice", 0.0, A))
    assert off.before("alice", 5.0) == ()
    ctx = CallContext()
    ctx.add(line("alice", 0.0, A))
    ctx.add(line("bob", 3.0, B))
    ctx.forget("alice")
    assert [x.speaker for x in ctx.before("bob", 9.0)] == ["bob"]


def test_prompt_uses_lines_of_the_decoded_language_only() -> None:
    lines = (line("alice", 0.0, "그것도 춘우에게 어머니 없는 탓으로", "ko"), line("bob", 3.0, B))
    assert prompt_text(lines, "en") == B
    assert prompt_text(lines, "ko") == "그것도 춘우에게 어머니 없는 탓으로"
    assert prompt_text(lines, "zh") == ""


def test_echo_of_the_prompt() -> None:
    prompt = f"{A.lower()} {B.lower()}"
    assert is_echo("The reciter then read the list again.", prompt)  # the prompt's last line back
    assert is_echo("Fortunately, Warner and the detectives were keeping bachelor hall", prompt)
    assert not is_echo("And they went on together towards the village.", prompt)
    # Partly the same words is speech about the same thing, not an echo.
    assert not is_echo("Warner and the detectives went on together towards the village.", prompt)
    assert not is_echo("Thank you.", "thank you. thank you.")  # short replies rightly recur
    assert not is_echo(B, "")
    # Text without spaces: character n-grams.
    assert is_echo("广州市房地产中介协会", "甚至出现交易几乎停滞的情况 广州市房地产中介协会分析")
    assert not is_echo("甚至出现交易几乎停滞", "广州市房地产中介协会分析")
    assert is_echo("广州市，房地产中介协会。", "甚至出现交易几乎停滞的情况 广州市房地产中介协会分析")
    assert not is_echo("广州市", "广州市房地产中介协会分析")


def test_own_lines_only() -> None:
    ctx = CallContext(ContextOptions(lines=2, others=False))
    ctx.add(line("alice", 0.0, A))
    ctx.add(line("bob", 3.0, B))
    ctx.add(line("alice", 6.0, C))
    assert [x.text for x in ctx.before("alice", 9.0)] == [A, C]
    assert [x.text for x in ctx.before("bob", 9.0)] == [B]
