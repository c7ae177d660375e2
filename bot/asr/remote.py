"""Transcription on another machine: an OpenAI-compatible ``/v1/audio/transcriptions`` server.

Each utterance goes as a 16 kHz mono WAV with ``response_format=verbose_json`` (text,
language and Whisper's per-segment scores, which the hallucination filter reads here as it
does for the local model), the call's language when it has one, and the participant names
and recent lines as Whisper's ``prompt``. Failures are retried (``remote_retries``, doubling
pauses); a server that stays down is left alone for ``remote_down_pause_seconds`` while the
local model (loaded on first need) transcribes, with one warning when it goes down and one
when it is back. A request the server rejects as bad (400, 413, 422) falls back for that
utterance only.

Call time: the request runs inside the scheduler's timed work like a local decode, so a
virtual clock (``replay --speed 0``) counts the network and the server's time as a live call
would have waited for it.

Not sent: the detection candidates of ``asr.language = "ko,en"`` (the API takes one language
or none) and beam size (the server's own setting).
"""

from __future__ import annotations

import io
import logging
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bot.asr.context import prompt_text
from bot.asr.hallucination import rejection_reason
from bot.asr.transcriber import DecodeOptions, Request, Transcript

log = logging.getLogger(__name__)

# Whisper's language names as servers may return them (OpenAI does: "english"), to codes.
_NAMES = {
    "english": "en",
    "korean": "ko",
    "chinese": "zh",
    "mandarin": "zh",
    "japanese": "ja",
    "russian": "ru",
    "german": "de",
    "french": "fr",
    "spanish": "es",
    "italian": "it",
    "portuguese": "pt",
    "arabic": "ar",
    "hindi": "hi",
    "dutch": "nl",
    "polish": "pl",
    "turkish": "tr",
    "vietnamese": "vi",
    "ukrainian": "uk",
}
_PROMPT_CHARS = 400  # about Whisper's 223 prompt tokens at most; the tail is what conditions best
_BAD_REQUEST = {400, 413, 415, 422}


@dataclass(frozen=True)
class RemoteSettings:
    base_url: str
    model: str
    api_key: str = ""
    timeout_seconds: float = 20.0
    connect_timeout_seconds: float = 2.0
    retries: int = 1
    backoff_seconds: float = 0.25
    down_pause_seconds: float = 30.0

    @classmethod
    def from_config(cls, asr: Any) -> RemoteSettings:
        return cls(
            base_url=asr.remote_url,
            model=asr.remote_model,
            api_key=asr.remote_api_key,
            timeout_seconds=asr.remote_timeout_seconds,
            connect_timeout_seconds=asr.remote_connect_timeout_seconds,
            retries=asr.remote_retries,
            down_pause_seconds=asr.remote_down_pause_seconds,
        )


@dataclass
class RemoteStats:
    remote: int = 0  # utterances the server transcribed
    retries: int = 0  # requests repeated after a failure
    fallback: int = 0  # utterances the local model transcribed instead
    failures: int = 0  # requests that failed (each attempt)
    outages: int = 0  # times the server was found down
    last_error: str | None = None


class RemoteUnavailable(Exception):
    """The remote server could not transcribe the utterance (after the retries)."""

    def __init__(self, message: str, *, bad_request: bool = False) -> None:
        super().__init__(message)
        self.bad_request = bad_request


def wav_bytes(audio: np.ndarray, rate: int = 16000) -> bytes:
    """16-bit mono WAV of float32 samples in [-1, 1]."""
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


class RemoteTranscriber:
    """A Backend for the scheduler; thread-safe (one HTTP client, a lock around the state)."""

    def __init__(self, settings: RemoteSettings, local: Callable[[], Any] | None = None) -> None:
        import openai

        self.settings = settings
        self.name = f"remote:{settings.model}"
        self.stats = RemoteStats()
        self._local_factory = local
        self._local: Any = None
        self._local_lock = threading.Lock()
        self._lock = threading.Lock()
        self._down_until = 0.0  # monotonic time before which the server is not asked
        self._client = openai.OpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key or "not-needed",
            max_retries=0,  # ours, counted and logged
            timeout=openai.Timeout(settings.timeout_seconds, connect=settings.connect_timeout_seconds),
        )

    # -- the Backend interface -------------------------------------------------------------

    def transcribe_batch(self, requests: list[Request], options: DecodeOptions) -> list[Transcript]:
        # One request each: the API takes one file; the scheduler's workers are the concurrency.
        return [self.transcribe(r, options) for r in requests]

    def transcribe(self, request: Request, options: DecodeOptions) -> Transcript:
        if self._usable():
            try:
                transcript = self._remote(request, options)
            except RemoteUnavailable as exc:
                self._failed(exc)
            else:
                self._succeeded()
                return transcript
        return self._fallback(request, options)

    # -- state -----------------------------------------------------------------------------

    def _usable(self) -> bool:
        with self._lock:
            return time.monotonic() >= self._down_until

    def _failed(self, exc: RemoteUnavailable) -> None:
        with self._lock:
            self.stats.last_error = str(exc)
            if exc.bad_request:
                log.warning("remote transcription refused one utterance (%s); transcribing it locally", exc)
                return
            was_up = self._down_until == 0.0
            self._down_until = time.monotonic() + self.settings.down_pause_seconds
            if was_up:
                self.stats.outages += 1
        if was_up:
            what = "transcribing on the local model" if self._local_factory else "utterances fail"
            log.warning(
                "remote transcription at %s is down (%s): %s; asking it again in %.0f s",
                self.settings.base_url,
                exc,
                what,
                self.settings.down_pause_seconds,
            )

    def _succeeded(self) -> None:
        with self._lock:
            back = self._down_until != 0.0
            self._down_until = 0.0
            self.stats.remote += 1
        if back:
            log.warning("remote transcription at %s is back", self.settings.base_url)

    def _fallback(self, request: Request, options: DecodeOptions) -> Transcript:
        if self._local_factory is None:
            raise RemoteUnavailable(
                f"remote transcription at {self.settings.base_url} is unavailable "
                f"({self.stats.last_error}) and asr.remote_fallback is off"
            )
        with self._local_lock:
            if self._local is None:
                log.warning("loading the local Whisper model for the remote server's absence")
                self._local = self._local_factory()
        with self._lock:
            self.stats.fallback += 1
        return self._local.transcribe_batch([request], options)[0]

    # -- the request -----------------------------------------------------------------------

    def _remote(self, request: Request, options: DecodeOptions) -> Transcript:
        import openai

        data = wav_bytes(request.audio)
        language = options.language
        # No temperature: the server keeps Whisper's fallback to higher ones, as the local decode does.
        kwargs: dict[str, Any] = {"response_format": "verbose_json"}
        if language:
            kwargs["language"] = language
        prompt = self._prompt(request, language)
        if prompt:
            kwargs["prompt"] = prompt
        pause = self.settings.backoff_seconds
        for attempt in range(self.settings.retries + 1):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
                time.sleep(pause)
                pause *= 2
            try:
                answer = self._client.audio.transcriptions.create(
                    model=self.settings.model, file=("utterance.wav", data, "audio/wav"), **kwargs
                )
                return self._read(answer, language, options)
            except openai.APIStatusError as exc:
                with self._lock:
                    self.stats.failures += 1
                error = RemoteUnavailable(
                    f"HTTP {exc.status_code}: {_short(exc.message)}", bad_request=exc.status_code in _BAD_REQUEST
                )
                if exc.status_code in _BAD_REQUEST or exc.status_code in (401, 403, 404):
                    raise error from None  # asking again would get the same answer
            except (openai.APIConnectionError, openai.APIResponseValidationError, ValueError) as exc:
                with self._lock:
                    self.stats.failures += 1
                error = RemoteUnavailable(_short(f"{type(exc).__name__}: {exc}"))
        raise error

    @staticmethod
    def _prompt(request: Request, language: str | None) -> str:
        lang = language or next(iter(request.language_hints), None)
        previous = prompt_text(request.previous, lang) if lang else ""
        text = " ".join(p for p in (request.hotwords or "", previous) if p).strip()
        return text[-_PROMPT_CHARS:]

    @staticmethod
    def _read(answer: Any, language: str | None, options: DecodeOptions) -> Transcript:
        from faster_whisper.transcribe import get_compression_ratio

        body = answer.model_dump() if hasattr(answer, "model_dump") else dict(answer)
        text = str(body.get("text") or "").strip()
        segments = [s for s in body.get("segments") or [] if isinstance(s, dict)]
        spoken = str(body.get("language") or language or "en").lower()
        code = _NAMES.get(spoken, spoken)
        weights = [max(float(s.get("end", 0) or 0) - float(s.get("start", 0) or 0), 0.01) for s in segments]
        logprobs = [float(s["avg_logprob"]) for s in segments if s.get("avg_logprob") is not None]
        avg_logprob = (
            float(np.average(logprobs, weights=weights[: len(logprobs)])) if len(logprobs) == len(segments) else 0.0
        )
        no_speech = [float(s["no_speech_prob"]) for s in segments if s.get("no_speech_prob") is not None]
        decoded = Transcript(
            text=text,
            language=code,
            # The API gives no probability: the language asked for is certain, the server's
            # detection is taken as a usable hint for the speaker.
            language_probability=1.0 if language else 0.5,
            avg_logprob=avg_logprob,
            no_speech_prob=min(no_speech) if no_speech else 0.0,
            compression_ratio=float(get_compression_ratio(text)) if text else 0.0,
        )
        if code == "zh":
            from storage.script import to_script

            decoded = replace(decoded, text=to_script(decoded.text, options.chinese_script))
        if options.filter is not None:
            rejected = rejection_reason(
                decoded.text,
                avg_logprob=decoded.avg_logprob,
                no_speech_prob=decoded.no_speech_prob,
                compression_ratio=decoded.compression_ratio,
                options=options.filter,
            )
            decoded = replace(decoded, rejected=rejected)
        return decoded


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
