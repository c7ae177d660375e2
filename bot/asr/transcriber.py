"""Utterances in, transcripts out: one Whisper encoder pass per utterance, batched across streams.

faster-whisper's ``transcribe`` is built for long files: it encodes once to detect the
language and again to decode, one file at a time. A call's utterances are short (under
30 s, one Whisper window each), so here each batch of utterances, from any participants,
is encoded once; language detection and greedy decoding both read that encoder output.
Greedy decoding matches ``WhisperModel.transcribe(..., without_timestamps=True)``, each
utterance conditioned on the call's recent lines (``Request.previous``, see bot/asr/context.py)
as Whisper conditions a window on the one before; an utterance that fails Whisper's quality
checks gets Whisper's remedies (see ``_fallback``), bounded so that one bad utterance cannot
hold a worker for seconds. Chinese comes out in one script (storage/script.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bot.asr.context import Line, is_echo, prompt_text
from bot.asr.hallucination import FilterOptions, rejection_reason
from storage.script import ChineseScript, to_script

if TYPE_CHECKING:
    from bot.asr.model import DeviceChoice
    from bot.config import Config

# Whisper's own quality gates (the defaults of faster-whisper and openai-whisper).
_LOGPROB_FALLBACK = -1.0
_COMPRESSION_FALLBACK = 2.4
_NO_SPEECH_SILENCE = 0.6
# Below this, a detected language is a guess: on a short utterance Whisper readily hears
# "By Allah, replied the fireman" as Arabic. The language the speaker, or the call, has
# been using is then the better bet, if Whisper finds it plausible at all.
_LANGUAGE_CONFIDENT = 0.8
_LANGUAGE_PLAUSIBLE = 0.05


@dataclass(frozen=True)
class DecodeOptions:
    language: str | None = None  # None: detect per utterance
    candidates: tuple[str, ...] = ()  # when detecting, choose among these only (e.g. ("ko", "en"))
    beam_size: int = 1
    filter: FilterOptions | None = FilterOptions()
    # Tokens of previous text at most: enough for a few lines, far below Whisper's 223, so that
    # an old topic fades and the decoder's prefix stays cheap.
    previous_tokens: int = 96
    chinese_script: ChineseScript = ChineseScript.SIMPLIFIED


@dataclass(frozen=True)
class Request:
    """One utterance to transcribe."""

    audio: np.ndarray  # 16 kHz mono float32, at most 30 s
    hotwords: str | None = None
    previous: tuple[Line, ...] = ()  # the call's recent lines (those in the decoded language are used)
    language_hints: tuple[str, ...] = ()  # the speaker's language, then the call's, most likely first


@dataclass(frozen=True)
class Word:
    """A word as Whisper wrote it (leading space and punctuation kept) and how sure it was."""

    text: str
    probability: float  # the least probable of its tokens, from the decoder's own distribution


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    rejected: str | None = None  # why the hallucination filter dropped it
    prompted: bool = False  # decoded with previous text
    echo: bool = False  # the first decode repeated the previous text: decoded again without it
    # Per word, how sure the decoder was: the hints build suggestions only on words it heard for
    # sure. Read off the log-probabilities the decoder computes anyway (no extra pass).
    words: tuple[Word, ...] = ()

    @property
    def kept(self) -> bool:
        return self.rejected is None


class WhisperTranscriber:
    """Wraps a faster-whisper ``WhisperModel``; thread-safe (CTranslate2 runs ``num_workers`` at once)."""

    @classmethod
    def from_config(cls, config: Config) -> WhisperTranscriber:
        """The configured model, loaded (blocking: seconds; may download on first use)."""
        from bot.asr.model import check_device, load_whisper

        asr = config.asr
        choice = check_device(asr.device, asr.compute_type)
        model = load_whisper(
            asr.model,
            device=choice.device,
            compute_type=choice.compute_type,
            workers=asr.workers,
            cpu_threads=asr.cpu_threads,
            search_dirs=config.models.dirs,
            download_root=asr.download_root,
        )
        return cls(model, asr.model, choice)

    def __init__(self, model, name: str, device: DeviceChoice | None = None) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model = model
        self.name = name
        self.device = device  # None: loaded by the caller, who knows where
        self.multilingual = bool(model.model.is_multilingual)
        self._tokenizers: dict[str, Tokenizer] = {}
        for lang in ["en"] if not self.multilingual else []:
            self._tokenizer(lang)
        self._suppress = get_suppressed_tokens(self._tokenizer("en"), [-1])

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        tok = self._tokenizers.get(language)
        if tok is None:
            tok = Tokenizer(
                self.model.hf_tokenizer,
                self.multilingual,
                task="transcribe",
                language=language if self.multilingual else "en",
            )
            self._tokenizers[language] = tok
        return tok

    def _features(self, audio: np.ndarray) -> np.ndarray:
        from faster_whisper.audio import pad_or_trim

        extractor = self.model.feature_extractor
        return pad_or_trim(extractor(audio[: extractor.n_samples]))

    def transcribe(self, request: Request, options: DecodeOptions) -> Transcript:
        return self.transcribe_batch([request], options)[0]

    def transcribe_batch(self, requests: list[Request], options: DecodeOptions) -> list[Transcript]:
        features = np.stack([self._features(r.audio) for r in requests])
        encoded = self.model.encode(features)
        languages = self._languages(encoded, requests, options)
        previous = [prompt_text(r.previous, lang) for r, (lang, _) in zip(requests, languages)]
        prompts = [
            self._prompt(lang, r.hotwords, prev, options) for r, (lang, _), prev in zip(requests, languages, previous)
        ]
        max_length = max(self._max_length(p, r) for p, r in zip(prompts, requests))
        results = self.model.model.generate(
            encoded,
            prompts,
            beam_size=options.beam_size,
            patience=1.0,
            length_penalty=1.0,
            max_length=max_length,
            return_scores=True,
            return_logits_vocab=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )
        out = []
        for i, (request, (lang, lang_p), result) in enumerate(zip(requests, languages, results)):
            decoded = self._read(result, lang)
            echo = bool(previous[i]) and is_echo(decoded.text, previous[i])
            if echo:
                decoded = self._without_previous(features[i], request, lang, options)
            if decoded.needs_fallback:
                decoded = self._fallback(features[i], request, lang, options, decoded)
            if lang == "zh":
                decoded = replace(decoded, text=to_script(decoded.text, options.chinese_script))
            rejected = None
            if options.filter is not None:
                rejected = rejection_reason(
                    decoded.text,
                    avg_logprob=decoded.avg_logprob,
                    no_speech_prob=decoded.no_speech_prob,
                    compression_ratio=decoded.compression_ratio,
                    options=options.filter,
                )
            out.append(
                Transcript(
                    text=decoded.text,
                    language=lang,
                    language_probability=lang_p,
                    avg_logprob=decoded.avg_logprob,
                    no_speech_prob=decoded.no_speech_prob,
                    compression_ratio=decoded.compression_ratio,
                    rejected=rejected,
                    prompted=bool(previous[i]) and not echo,
                    echo=echo,
                    words=decoded.words,
                )
            )
        return out

    def _prompt(
        self, language: str, hotwords: str | None, previous: str = "", options: DecodeOptions | None = None
    ) -> list[int]:
        tokenizer = self._tokenizer(language)
        tokens: list[int] = []
        if previous:
            limit = options.previous_tokens if options is not None else DecodeOptions.previous_tokens
            tokens = tokenizer.encode(" " + previous.strip())[-limit:] if limit > 0 else []
        return self.model.get_prompt(tokenizer, tokens, without_timestamps=True, hotwords=hotwords)

    def _without_previous(
        self, features: np.ndarray, request: Request, language: str, options: DecodeOptions
    ) -> _Decoded:
        """The utterance decoded again with the hotwords only (after an echo of the previous text)."""
        encoded = self.model.encode(features[None])
        prompt = self._prompt(language, request.hotwords)
        result = self.model.model.generate(
            encoded,
            [prompt],
            beam_size=options.beam_size,
            max_length=self._max_length(prompt, request),
            return_scores=True,
            return_logits_vocab=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )[0]
        return self._read(result, language)

    def _max_length(self, prompt: list[int], request: Request) -> int:
        # Nobody says more than ~20 tokens a second (Korean, Chinese included); without a
        # bound a derailed decode runs to Whisper's 448 tokens, seconds of work per utterance.
        seconds = len(request.audio) / 16000
        return min(self.model.max_length, len(prompt) + 20 + int(20 * seconds))

    def _read(self, result, language: str) -> _Decoded:
        from faster_whisper.transcribe import get_compression_ratio

        tokens = result.sequences_ids[0]
        tokenizer = self._tokenizer(language)
        text = tokenizer.decode(tokens).strip()
        return _Decoded(
            text,
            float(result.scores[0] * len(tokens) / (len(tokens) + 1)),
            float(get_compression_ratio(text)),
            float(result.no_speech_prob),
            _words(tokenizer, tokens, result.logits[0] if result.logits else []),
        )

    def _fallback(
        self, features: np.ndarray, request: Request, language: str, options: DecodeOptions, greedy: _Decoded
    ) -> _Decoded:
        """Whisper's remedies for a decode that looped or lost confidence, with bounded cost.

        First without the hotwords and the previous text: a list of names or a line of the
        call in the prompt can itself start a loop (Whisper goes on with the list or repeats
        the line; Whisper's own fallback likewise drops the prompt). Then sampling at rising temperatures, as Whisper's
        own fallback does, two hypotheses each instead of five.
        """
        encoded = self.model.encode(features[None])
        prompt = self._prompt(language, None)
        max_length = self._max_length(prompt, request)
        common = dict(
            max_length=max_length,
            return_scores=True,
            return_logits_vocab=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )
        tried = [greedy]
        attempts: list[dict[str, float]] = (
            [dict(beam_size=options.beam_size)] if request.hotwords or request.previous else []
        )
        attempts += [
            dict(beam_size=1, num_hypotheses=2, sampling_topk=0, sampling_temperature=t) for t in (0.2, 0.5, 0.8)
        ]
        for kwargs in attempts:
            result = self.model.model.generate(encoded, [prompt], **common, **kwargs)[0]
            decoded = self._read(result, language)
            if not decoded.needs_fallback:
                return decoded
            tried.append(decoded)
        fine = [d for d in tried if d.compression_ratio <= _COMPRESSION_FALLBACK]
        return max(fine or tried, key=lambda d: d.avg_logprob)

    def _languages(self, encoded, requests: list[Request], options: DecodeOptions) -> list[tuple[str, float]]:
        if options.language is not None or not self.multilingual:
            return [(options.language or "en", 1.0)] * len(requests)
        detected = []
        for request, ranking in zip(requests, self.model.model.detect_language(encoded)):
            probs = {token[2:-2]: float(p) for token, p in ranking}
            if options.candidates:
                lang = max(options.candidates, key=lambda c: probs.get(c, 0.0))
            else:
                lang = max(probs, key=probs.__getitem__)
                if probs[lang] < _LANGUAGE_CONFIDENT:
                    lang = next((h for h in request.language_hints if probs.get(h, 0.0) >= _LANGUAGE_PLAUSIBLE), lang)
            detected.append((lang, probs.get(lang, 0.0)))
        return detected


def _words(tokenizer, tokens: list[int], logits) -> tuple[Word, ...]:
    """Whisper's words with the probability of their least sure token. ``logits`` holds, per
    decoding step, the decoder's log-probabilities over the vocabulary (what greedy decoding chose from)."""
    if not tokens or len(logits) < len(tokens):
        return ()
    probs = []
    for step, token in zip(logits, tokens):
        row = np.asarray(step, dtype=np.float32)
        top = float(row.max())
        # Normalised here: whatever the runtime returns (log-probabilities or raw logits).
        probs.append(float(np.exp(row[token] - top) / np.exp(row - top).sum()))
    words, groups = tokenizer.split_to_word_tokens(list(tokens) + [tokenizer.eot])
    out, i = [], 0
    for word, group in zip(words, groups):
        n = len([t for t in group if t < tokenizer.eot])
        if n and word.strip():
            out.append(Word(word, round(min(probs[i : i + n]), 4)))
        i += n
    return tuple(out)


@dataclass(frozen=True)
class _Decoded:
    text: str
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: tuple[Word, ...] = ()

    @property
    def needs_fallback(self) -> bool:
        """Whisper's own rule: too repetitive or too unsure, unless it is just silence."""
        silent = self.no_speech_prob > _NO_SPEECH_SILENCE and self.avg_logprob < _LOGPROB_FALLBACK
        return not silent and (self.compression_ratio > _COMPRESSION_FALLBACK or self.avg_logprob < _LOGPROB_FALLBACK)
