"""Awkwardness signals, fed voice activity and transcript lines directly (the replayed calls are
in test_awkward_replay.py)."""

from __future__ import annotations

from bot.hints.awkward import Said, SaidLog, Signal, SignalOptions, is_backchannel, is_question
from bot.hints.lull import LullDetector, LullOptions
from bot.hints.state import ConversationState

ALL = SignalOptions(monologue=True, short_answers=True, backchannels=True, unanswered=True)
LONG = "We sailed past the old lighthouse before the storm reached the harbour"


def test_vocabulary():
    for text in ("Yeah.", "Mm-hmm.", "Oh, I see.", "Yeah, yeah.", "응.", "아 네.", "응 응", "Uh-huh", "Really?"):
        assert is_backchannel(text), text
    for text in ("Yeah, I went there in May.", "Five.", "네 시에 만나요", "", "Right, so the captain left early"):
        assert not is_backchannel(text), text
    for text in ("What do I here seek?", "오늘 점심 닭도리탕 어때?", "Did you go?\u201d", "이거 맞나요"):
        assert is_question(text), text
    for text in ("I went there.", "네.", "The question is open"):
        assert not is_question(text), text


class Call:
    """A detector on a conversation state and a transcript log, fed as time passes."""

    def __init__(self, options: SignalOptions, **kw) -> None:
        self.state = ConversationState()
        self.said = SaidLog()
        self.state.joined("a"), self.state.joined("b")
        opt = LullOptions(**{"threshold": 5.0, "cooldown": 30.0, "signals": options, "signal_threshold": 3.0, **kw})
        self.detector = LullDetector(self.state, opt, said=self.said.known)

    def run(self, turns: list[tuple[str, float, float, str]], until: float, lag: float = 1.0) -> list:
        """``turns``: (speaker, start, end, text); each transcript exists ``lag`` s after its end."""
        events = sorted(
            [(s, 0, k, s, e, x) for k, s, e, x in turns]
            + [(e, 1, k, s, e, x) for k, s, e, x in turns]
            + [(e + lag, 2, k, s, e, x) for k, s, e, x in turns]
        )
        out, t, i = [], 0.0, 0
        while t <= until + 1e-9:
            while i < len(events) and events[i][0] <= t + 1e-9:
                at, kind, key, s, e, text = events[i]
                if kind == 0:
                    self.state.speech_started(key, s)
                elif kind == 1:
                    self.state.speech_ended(key, e)
                else:
                    self.said.add(Said(key, s, e, e + lag, text, "en"))
                i += 1
            lull = self.detector.check(t)
            if lull:
                out.append((round(lull.silence_start, 2), round(lull.detected_at, 2), list(lull.signals)))
            t = round(t + 0.1, 6)
        return out


OPENING = [("a", 0, 3, LONG), ("b", 3.5, 6, LONG), ("a", 6.5, 9, LONG)]


def test_unanswered_question_is_helped_sooner_and_an_answered_one_is_not():
    asked = [*OPENING, ("b", 9.5, 11, "Was the captain worried about the storm?")]
    assert Call(ALL).run(asked, 30) == [(11.0, 14.0, [Signal.UNANSWERED])]
    assert Call(SignalOptions()).run(asked, 30) == [(11.0, 16.0, [])]  # the signal off: plain silence
    answered = [*asked, ("a", 11.8, 14, "Not at all, he had seen worse storms than that one")]
    assert Call(ALL).run(answered, 40) == [(14.0, 19.0, [])]
    # Known only once transcribed: with a slow transcript the hint comes when the question is known.
    assert Call(ALL).run(asked, 30, lag=3.6) == [(11.0, 14.6, [Signal.UNANSWERED])]


def test_backchannels_only_make_a_lull_though_the_group_is_never_silent():
    bcs = [("b", 10, 10.5, "Yeah."), ("a", 13, 13.4, "Mm-hmm."), ("b", 16, 16.4, "Right."), ("a", 19, 19.5, "Yeah.")]
    # Gaps of 2.5 s: a plain lull never comes; 8 s after the last real line, with 1.5 s of quiet.
    assert Call(SignalOptions()).run([*OPENING, *bcs, ("b", 22, 25, LONG)], 26) == []
    assert Call(ALL).run([*OPENING, *bcs, ("b", 22, 25, LONG)], 26) == [(9.0, 17.9, [Signal.BACKCHANNELS])]
    # Real lines in between: nothing.
    mixed = [*OPENING, bcs[0], ("a", 12, 14, LONG), bcs[2], ("a", 18, 20, LONG), ("b", 22, 25, LONG)]
    assert Call(ALL).run(mixed, 26) == []


def test_short_answers_after_long_lines():
    short = [("b", 9.6, 10, "Fine."), ("a", 11, 11.5, "Tuesday."), ("b", 12.5, 13, "Not really.")]
    assert Call(ALL).run([*OPENING, *short], 30) == [(13.0, 16.0, [Signal.SHORT_ANSWERS])]
    # Short lines all along are how these people talk: no signal.
    curt = [("a", 0, 0.5, "Hi."), ("b", 1, 1.5, "Hello."), ("a", 2.5, 3, "Ready?"), ("b", 3.5, 4, "Yes, go.")]
    assert Call(ALL).run([*curt, *[(k, s - 5, e - 5, x) for k, s, e, x in short]], 30) == [(8.0, 13.0, [])]


def test_monologue_from_speaking_share():
    talk = [("a", 0, 2, "So tell me"), *[("b", 2.5 + 8 * i, 10 + 8 * i, LONG) for i in range(5)]]
    talk.insert(3, ("a", 25.5, 26, "Mm."))
    assert Call(ALL).run(talk, 60) == [(42.0, 45.0, [Signal.MONOLOGUE])]
    shared = [("ab"[i % 2], 8 * i, 7.5 + 8 * i, LONG) for i in range(6)]
    assert Call(ALL).run(shared, 60) == [(47.5, 52.5, [])]
