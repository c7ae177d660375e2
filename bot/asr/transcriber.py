"""Utterances in, transcripts out: one Whisper encoder pass per utterance, batched across streams.

faster-whisper's ``transcribe`` is built for long files: it encodes once to detect the
language and again to decode, one file at a time. A call's utterances are short (under
30 s, one Whisper window each), so here each batch of utterances, from any participants,
is encoded once; language detection and greedy decoding both read that encoder output.
Decoding options match ``WhisperModel.transcribe(..., without_timestamps=True,
condition_on_previous_text=False)``, and an utterance that fails Whisper's quality checks
falls back to faster-whisper's own temperature fallback, so the text equals what plain
faster-whisper would produce.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bot.asr.hallucination import FilterOptions, rejection_reason

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


@dataclass(frozen=True)
class Request:
    """One utterance to transcribe."""

    audio: np.ndarray  # 16 kHz mono float32, at most 30 s
    hotwords: str | None = None
    language_hints: tuple[str, ...] = ()  # the speaker's language, then the call's, most likely first


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    rejected: str | None = None  # why the hallucination filter dropped it

    @property
    def kept(self) -> bool:
        return self.rejected is None


class WhisperTranscriber:
    """Wraps a faster-whisper ``WhisperModel``; thread-safe (CTranslate2 runs ``num_workers`` at once)."""

    def __init__(self, model, name: str) -> None:
        from faster_whisper.tokenizer import Tokenizer
        from faster_whisper.transcribe import get_suppressed_tokens

        self.model = model
        self.name = name
        self.multilingual = bool(model.model.is_multilingual)
        self._tokenizers: dict[str, Tokenizer] = {}
        for lang in (["en"] if not self.multilingual else []):
            self._tokenizer(lang)
        self._suppress = get_suppressed_tokens(self._tokenizer("en"), [-1])

    def _tokenizer(self, language: str):
        from faster_whisper.tokenizer import Tokenizer

        tok = self._tokenizers.get(language)
        if tok is None:
            tok = Tokenizer(self.model.hf_tokenizer, self.multilingual, task="transcribe",
                            language=language if self.multilingual else "en")
            self._tokenizers[language] = tok
        return tok

    def _features(self, audio: np.ndarray) -> np.ndarray:
        from faster_whisper.audio import pad_or_trim

        extractor = self.model.feature_extractor
        return pad_or_trim(extractor(audio[: extractor.n_samples]))

    def transcribe(self, request: Request, options: DecodeOptions) -> Transcript:
        return self.transcribe_batch([request], options)[0]

    def transcribe_batch(self, requests: list[Request], options: DecodeOptions) -> list[Transcript]:
        from faster_whisper.transcribe import get_compression_ratio

        features = np.stack([self._features(r.audio) for r in requests])
        encoded = self.model.encode(features)
        languages = self._languages(encoded, requests, options)
        prompts = []
        for request, (lang, _) in zip(requests, languages):
            prompts.append(self.model.get_prompt(self._tokenizer(lang), [], without_timestamps=True,
                                                 hotwords=request.hotwords))
        results = self.model.model.generate(
            encoded, prompts, beam_size=options.beam_size, patience=1.0, length_penalty=1.0,
            max_length=self.model.max_length, return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=self._suppress,
        )
        out = []
        for request, (lang, lang_p), result in zip(requests, languages, results):
            tokens = result.sequences_ids[0]
            avg_logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
            text = self._tokenizer(lang).decode(tokens).strip()
            ratio = get_compression_ratio(text)
            no_speech = float(result.no_speech_prob)
            silent = no_speech > _NO_SPEECH_SILENCE and avg_logprob < _LOGPROB_FALLBACK
            if not silent and (ratio > _COMPRESSION_FALLBACK or avg_logprob < _LOGPROB_FALLBACK):
                text, avg_logprob, ratio, no_speech = self._fallback(request.audio, lang, request.hotwords,
                                                                     options, (text, avg_logprob, ratio, no_speech))
            rejected = None
            if options.filter is not None:
                rejected = rejection_reason(text, avg_logprob=avg_logprob, no_speech_prob=no_speech,
                                            compression_ratio=ratio, options=options.filter)
            out.append(Transcript(text=text, language=lang, language_probability=lang_p,
                                  avg_logprob=float(avg_logprob), no_speech_prob=no_speech,
                                  compression_ratio=float(ratio), rejected=rejected))
        return out

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

    def _fallback(self, audio, language, hotwords, options, greedy):
        """Whisper's temperature fallback for an utterance greedy decoding got wrong (rare)."""
        segments, _ = self.model.transcribe(
            audio, language=language, beam_size=options.beam_size, temperature=[0.2, 0.4, 0.6, 0.8, 1.0],
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False, hotwords=hotwords,
            no_speech_threshold=None)
        segments = list(segments)
        if not segments:
            return greedy
        joiner = "" if language in ("zh", "ja") else " "
        text = joiner.join(s.text.strip() for s in segments).strip()
        logprob = float(np.mean([s.avg_logprob for s in segments]))
        if logprob <= greedy[1]:
            return greedy
        return (text, logprob, max(s.compression_ratio for s in segments), max(s.no_speech_prob for s in segments))
