"""Configuration: one TOML file, every key overridable by ``STALK_<SECTION>_<KEY>``.

The config is read once at start-up into frozen dataclasses and passed down; nothing
else reads the environment for settings. Secrets (``DISCORD_TOKEN``) are never read
from the file, only from the environment, by the code that needs them.

Every field carries its constraint in ``metadata`` so that one validator produces the
same kind of message for the file and the environment: the key, the value, and what is
allowed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

from bot.errors import ConfigError
from storage.vocab import ConsentMode, values

log = logging.getLogger(__name__)

ENV_PREFIX = "STALK_"


def _opt(
    default: Any,
    help: str,
    *,
    choices: tuple | None = None,
    low: float | None = None,
    high: float | None = None,
    language: bool = False,
    empty: bool = False,
    norm: Any = None,
    allowed: str | None = None,
) -> Any:
    # norm: value -> the value as stored, or None when it is not allowed (``allowed`` says what is).
    meta = {
        "help": help,
        "choices": choices,
        "low": low,
        "high": high,
        "language": language,
        "empty": empty,
        "norm": norm,
        "allowed": allowed,
    }
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AsrConfig:
    model: str = _opt(
        "base",
        "faster-whisper model: a size name (tiny, base, small, medium, large-v3, tiny.en, ...) "
        "downloaded on first use, or a local CTranslate2 model directory",
    )
    device: str = _opt(
        "auto",
        "inference device: auto uses a CUDA GPU when CTranslate2 sees one, else the CPU",
        choices=("auto", "cpu", "cuda"),
    )
    compute_type: str = _opt(
        "auto",
        "CTranslate2 compute type: auto is float16 on a GPU, int8 on the CPU",
        choices=("auto", "int8", "int8_float32", "int8_float16", "float16", "float32", "default"),
    )
    language: str = _opt(
        "auto",
        "spoken language: a Whisper code (en, ko, zh, ...); auto to detect it per "
        "utterance (guided by what each speaker and the call used before); or a list such as "
        '"ko,en" to detect among those only',
        language=True,
    )
    beam_size: int = _opt(1, "beam width; 1 is greedy decoding, the fastest on CPU", low=1, high=10)
    workers: int = _opt(2, "transcription worker threads sharing one model", low=1, high=16)
    cpu_threads: int = _opt(
        0,
        "threads per worker; 0 lets each worker use every core (a lone utterance is "
        "transcribed fastest; busy workers share the cores)",
        low=0,
        high=64,
    )
    queue_size: int = _opt(64, "utterances waiting for transcription before sources are slowed down", low=1, high=10000)
    batch_size: int = _opt(
        1, "utterances transcribed together when several are waiting; 1 turns batching off", low=1, high=16
    )
    hotwords: bool = _opt(True, "pass participant names (and vocabulary) to Whisper as vocabulary hints")
    vocabulary: list[str] = _opt(
        [], "words Whisper should know (names, jargon), passed with the participant names as hints"
    )
    # Off by default: measured by benchmarks/bench_accuracy.py, base int8, it cost English 2.2-3.6
    # points of WER and gained Korean 0.8-1.6 points of CER (docs/benchmarks.md#accuracy).
    context: bool = _opt(
        False, "condition Whisper on the call's recent transcript (the speaker's and the others' last lines)"
    )
    context_lines: int = _opt(4, "how many recent lines of the call condition each utterance", low=1, high=20)
    context_others: bool = _opt(
        True, "the context holds the other participants' lines too (false: the speaker's own lines only)"
    )
    chinese_script: str = _opt(
        "simplified",
        "the script Chinese transcripts are stored in (converted with OpenCC); as_written keeps Whisper's",
        choices=("simplified", "traditional", "taiwan", "hongkong", "as_written"),
    )
    no_speech_threshold: float = _opt(
        0.6,
        "drop a transcript whose no-speech probability is above this "
        "and whose average log-probability is below log_prob_threshold",
        low=0.0,
        high=1.0,
    )
    log_prob_threshold: float = _opt(-1.0, "see no_speech_threshold", low=-10.0, high=0.0)
    compression_ratio_threshold: float = _opt(
        2.4, "drop a transcript more repetitive than this gzip ratio", low=1.0, high=10.0
    )
    hallucination_filter: bool = _opt(
        True,
        "drop Whisper's known phrases on silence and noise "
        '("Thanks for watching", "MBC 뉴스", ...) and runaway repetitions',
    )
    download_root: str = _opt("", "where downloaded models are cached; empty uses the Hugging Face cache", empty=True)
    backend: str = _opt(
        "local",
        "where utterances are transcribed: local (the model above, in this process) or remote (a "
        "server speaking the OpenAI API's /v1/audio/transcriptions at remote_url; the local model is the fallback)",
        choices=("local", "remote"),
    )
    remote_url: str = _opt(
        "http://localhost:8000/v1",
        "the remote server's API base (faster-whisper-server, speaches, vLLM, OpenAI: https://api.openai.com/v1)",
    )
    remote_model: str = _opt("whisper-1", "model name as the remote server knows it")
    remote_api_key: str = _opt(
        "", "API key if the remote server needs one (better set STALK_ASR_REMOTE_API_KEY)", empty=True
    )
    remote_timeout_seconds: float = _opt(
        20.0, "longest wait for one utterance's transcript from the remote server", low=0.5, high=600.0
    )
    remote_connect_timeout_seconds: float = _opt(
        2.0, "longest wait to connect to the remote server", low=0.1, high=60.0
    )
    remote_retries: int = _opt(
        1, "further attempts after a failed remote request (doubling pauses from 0.25 s)", low=0, high=10
    )
    remote_down_pause_seconds: float = _opt(
        30.0,
        "after the remote server failed, transcribe locally for this long before trying it again",
        low=1.0,
        high=3600.0,
    )
    remote_fallback: bool = _opt(
        True,
        "when the remote server is down, transcribe on the local model (loaded on first need); "
        "false: such utterances fail and the session says how many",
    )


@dataclass(frozen=True)
class VadConfig:
    threshold: float = _opt(0.5, "speech probability that starts an utterance", low=0.05, high=0.95)
    min_silence_ms: int = _opt(500, "silence that ends an utterance", low=100, high=5000)
    min_speech_ms: int = _opt(250, "shorter bursts of speech are dropped as noise", low=0, high=5000)
    max_utterance_s: float = _opt(15.0, "longer speech is split at its quietest point", low=2.0, high=30.0)
    speech_pad_ms: int = _opt(200, "audio kept before and after speech for the recogniser", low=0, high=1000)
    background_db: float = _opt(
        0.0,
        "drop an utterance this many dB quieter than the speaker's recent speech, as other people "
        "talking in their room; 0 keeps every utterance",
        low=0.0,
        high=40.0,
    )
    early_ms: int = _opt(
        0,
        "after this much silence (less than min_silence_ms) the utterance is transcribed early, "
        "kept if it did end there; 0 waits for min_silence_ms",
        low=0,
        high=5000,
    )


@dataclass(frozen=True)
class StorageConfig:
    url: str = _opt("~/.local/share/s-talk/s-talk.db", "database: a SQLite file path or any SQLAlchemy URL")


@dataclass(frozen=True)
class ModelsConfig:
    dirs: list[str] = _opt(
        ["~/.cache/s-talk/models"],
        "folders searched for a model before it is downloaded; a Whisper size name N is found "
        "as N/ or whisper-N/ inside them, a speaker model in their speaker/ folder (a relative "
        "folder is taken from the current directory)",
    )


@dataclass(frozen=True)
class ReplayConfig:
    speed: float = _opt(
        1.0,
        "replay pace: 1 is real time, 2 twice as fast, 0 as fast as the machine allows (call time is then virtual)",
        low=0.0,
        high=1000.0,
    )


MAX_SHARDS = 10_000


def _shards(value: Any) -> str | None:
    """ "off", "auto" or a shard count (an integer in TOML, or its digits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        count = int(value)
        return str(count) if 1 <= count <= MAX_SHARDS else None
    if isinstance(value, str) and value.strip().lower() in ("off", "auto"):
        return value.strip().lower()
    return None


@dataclass(frozen=True)
class DiscordConfig:
    test_guild: int = _opt(
        0,
        "a guild (server) id to sync slash commands to instantly while developing; 0 syncs "
        "them globally (Discord may take up to an hour to show changes)",
        low=0,
        high=2**63 - 1,
    )
    auto_leave_seconds: float = _opt(
        60.0,
        "leave the voice channel and close the session after it has had no one but the bot for this long",
        low=1.0,
        high=86400.0,
    )
    consent_mode: str = _opt(
        ConsentMode.NOTICE.value,
        "default for guilds that have not chosen: notice (everyone is processed "
        "unless they /optout) or opt_in (only those who said /optin)",
        choices=values(ConsentMode),
    )
    live_transcript: bool = _opt(False, "default for guilds that have not chosen: post the transcript as it forms")
    transcript_interval: float = _opt(
        5.0,
        "seconds between live transcript messages (one message per interval keeps far below Discord's rate limits)",
        low=1.0,
        high=300.0,
    )
    opus_library: str = _opt("", "libopus to load for voice: a file name or path; empty finds the system's", empty=True)
    listening_suffix: str = _opt(
        " [transcribing]", "added to the bot's nickname while it listens in a guild", empty=True
    )
    shards: str = _opt(
        "off",
        "gateway sharding (Discord requires it from 2,500 servers): off is one connection; auto "
        "runs as many shards as Discord recommends, all in this process; a number N splits the "
        "servers into N shards (this process runs those in shard_ids, or all of them)",
        norm=_shards,
        allowed=f"off, auto, or a shard count from 1 to {MAX_SHARDS}",
    )
    shard_ids: list[int] = _opt(
        [],
        "with shards = N: the shards (0 to N-1) this process runs, so that several processes "
        "share the servers (each its own ids, all of them sharing one PostgreSQL database); "
        "empty runs all N",
    )

    def __post_init__(self) -> None:
        if not self.shard_ids:
            return
        if self.shard_count is None:
            raise ConfigError(
                f"discord.shard_ids {self.shard_ids} needs a shard count, not shards = {self.shards!r}",
                "set [discord] shards to the total number of shards across all processes",
            )
        bad = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
        if bad or len(set(self.shard_ids)) != len(self.shard_ids):
            raise ConfigError(
                f"discord.shard_ids {self.shard_ids} must be distinct ids from 0 to {self.shard_count - 1}",
                f"with shards = {self.shard_count}, each process names its own shards among 0..{self.shard_count - 1}",
            )

    @property
    def sharded(self) -> bool:
        return self.shards != "off"

    @property
    def shard_count(self) -> int | None:
        """The number of shards configured; None when off or left to Discord (auto)."""
        return int(self.shards) if self.shards.isdigit() else None


@dataclass(frozen=True)
class RetentionConfig:
    max_age_days: int = _opt(
        0,
        "calls older than this many days are deleted for good (transcripts, suggestions, "
        "search index); 0 keeps them forever",
        low=0,
        high=36500,
    )
    check_hours: float = _opt(
        6.0, "how often the running bot deletes calls that have expired (it also does at start)", low=0.1, high=720.0
    )


@dataclass(frozen=True)
class SpeakerConfig:
    model: str = _opt(
        "auto",
        "speaker-embedding model (WeSpeaker-format ONNX): a file path; a name N found as "
        "N.onnx in the speaker/ folder of [models] dirs; or auto: WeSpeaker's VoxCeleb ResNet34-LM if "
        "present, else any .onnx in those speaker/ folders, else that model downloaded on first use",
    )
    threshold: float = _opt(
        0.0,
        "cosine score from which an utterance counts as its participant's voice; 0 uses the "
        "threshold calibrated for the model (benchmarks/calibrate_speaker.py)",
        low=0.0,
        high=1.0,
    )
    verify: bool = _opt(True, "check each utterance against its participant's voiceprint in calls and replays")
    min_utterance_s: float = _opt(1.0, "shorter utterances are not judged (verdict unknown)", low=0.3, high=10.0)
    min_enroll_speech_s: float = _opt(10.0, "net speech (measured by the VAD) an enrolment needs", low=3.0, high=600.0)
    enroll_timeout_s: float = _opt(
        90.0, "how long /enroll listens in a call for that much speech before giving up", low=3.0, high=600.0
    )
    context: int = _opt(
        2,
        "neighbouring utterances on each side whose evidence a verdict uses when they sound "
        "like the same voice; 0 judges each utterance alone",
        low=0,
        high=10,
    )
    threads: int = _opt(1, "onnxruntime threads for the speaker model", low=1, high=16)
    num_mel_bins: int = _opt(
        80, "fbank bins, for a model whose ONNX metadata does not say (WeSpeaker's exports: 80)", low=20, high=256
    )
    frame_length_ms: float = _opt(
        25.0, "fbank frame length, when the model's metadata does not say", low=5.0, high=100.0
    )
    frame_shift_ms: float = _opt(10.0, "fbank frame shift, when the model's metadata does not say", low=5.0, high=50.0)


@dataclass(frozen=True)
class HintsConfig:
    enabled: bool = _opt(True, "suggest topics privately when the conversation lulls")
    lull_seconds: float = _opt(
        5.0, "group silence that makes a lull (about 4 s is where people start to feel uneasy)", low=1.0, high=120.0
    )
    min_turns: int = _opt(
        3,
        "turns (speech by one person until another speaks), by at least two people and "
        "without a pause as long as lull_seconds between them, before a silence for it to count as a "
        "conversation that stalled",
        low=1,
        high=100,
    )
    active_window_seconds: float = _opt(
        60.0, "how far back the conversation before a silence is looked at", low=5.0, high=3600.0
    )
    cooldown_seconds: float = _opt(60.0, "least call time between two hints", low=0.0, high=3600.0)
    max_per_session: int = _opt(10, "most hints in one call", low=0, high=1000)
    flagging: bool = _opt(
        False,
        "also help sooner (after flagging_lull_seconds) when the conversation is "
        "flagging: turn rate and turn length both dropping against the minute before",
    )
    flagging_lull_seconds: float = _opt(3.5, "the lull threshold for a flagging conversation", low=1.0, high=120.0)
    monologue: bool = _opt(
        True,
        "help sooner (after signal_lull_seconds) when the silence follows a monologue: one person "
        "had monologue_share of the speech time in the active window, and at least monologue_seconds",
    )
    monologue_share: float = _opt(0.8, "the speaking share that makes a monologue", low=0.5, high=1.0)
    monologue_seconds: float = _opt(30.0, "the least speech by one person for a monologue", low=5.0, high=3600.0)
    short_answers: bool = _opt(
        True,
        "help sooner when the last three lines were short_answer_words words or fewer each, after "
        "longer ones (six words or more on average)",
    )
    short_answer_words: int = _opt(2, "a line this short (in words) is a short answer", low=1, high=10)
    backchannels: bool = _opt(
        True,
        'count a stretch of nothing but backchannels ("yeah", "mm", "응", "네") as silence: a '
        "hint comes backchannel_seconds after the last real line",
    )
    backchannel_seconds: float = _opt(
        8.0, "how long only backchannels after the last real line make a lull", low=2.0, high=120.0
    )
    unanswered: bool = _opt(True, "help sooner when the last real line was a question nobody answered")
    signal_lull_seconds: float = _opt(
        3.0,
        "the lull threshold after a monologue, short answers, backchannels or an unanswered question",
        low=1.0,
        high=120.0,
    )
    suggestions: int = _opt(3, "suggestions per hint", low=1, high=5)
    max_chars: int = _opt(120, "longest suggestion, in characters", low=40, high=300)
    window_seconds: float = _opt(180.0, "recent transcript the suggestions are drawn from", low=10.0, high=3600.0)
    prepare_interval_seconds: float = _opt(
        5.0, "least call time between two background requests to the model", low=0.0, high=600.0
    )
    max_age_seconds: float = _opt(
        120.0,
        "a prepared suggestion set started longer ago than this is stale at a "
        "lull (the built-in suggestions are used instead)",
        low=5.0,
        high=3600.0,
    )
    replay_opt_out: list[str] = _opt(
        [], "replay: participant NAMEs that get no hints (everyone else counts as opted in)"
    )


@dataclass(frozen=True)
class LlmConfig:
    enabled: bool = _opt(True, "ask a language model for suggestions; false uses the built-in ones only")
    base_url: str = _opt(
        "http://localhost:11434/v1",
        "an OpenAI-compatible chat completions API: Ollama "
        "(http://localhost:11434/v1), llama.cpp's server (http://localhost:8080/v1), vLLM, OpenAI",
    )
    model: str = _opt("llama3.1:8b", "model name as the server knows it (Ollama: llama3.1:8b, llama3:instruct)")
    api_key: str = _opt("", "API key if the server needs one (better set STALK_LLM_API_KEY)", empty=True)
    timeout_seconds: float = _opt(30.0, "longest wait for one answer", low=1.0, high=600.0)
    connect_timeout_seconds: float = _opt(3.0, "longest wait to connect", low=0.1, high=60.0)
    retries: int = _opt(2, "further attempts after a failed request, with doubling pauses", low=0, high=10)
    backoff_seconds: float = _opt(1.0, "pause before the first retry", low=0.0, high=60.0)
    down_pause_seconds: float = _opt(
        30.0,
        "after the retries fail, wait this long before asking again "
        "(doubling up to 5 minutes); the built-in suggestions cover the gap",
        low=1.0,
        high=3600.0,
    )
    temperature: float = _opt(0.7, "sampling temperature", low=0.0, high=2.0)
    max_tokens: int = _opt(300, "longest answer, in tokens", low=32, high=4096)
    structured: str = _opt(
        "auto",
        "how JSON is asked for: auto tries a schema the way llama.cpp takes it, then "
        "OpenAI's json_schema, then plain json_object, then none, keeping the first the "
        "server accepts",
        choices=("auto", "json_object_schema", "json_schema", "json_object", "none"),
    )


@dataclass(frozen=True)
class SummaryConfig:
    at_end: bool = _opt(
        True, "make the call's summary when it ends (in the background, after the transcript is stored)"
    )
    use_model: bool = _opt(
        True, "ask the [llm] model for summaries; false, or no model answering, makes the extractive one"
    )


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = _opt(
        False,
        "serve /metrics (Prometheus text format: utterances, latency, queue delay, voice receive, "
        "LLM failures) and /healthz over HTTP while the bot runs",
    )
    host: str = _opt(
        "127.0.0.1",
        "address to listen on: the loopback by default (the counters name no one, but need not "
        "leave the machine); 0.0.0.0 for a scraper on another machine",
    )
    port: int = _opt(9464, "port to listen on (0 picks a free one, logged at start)", low=0, high=65535)


@dataclass(frozen=True)
class Config:
    asr: AsrConfig = field(default_factory=AsrConfig)
    vad: VadConfig = field(default_factory=VadConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    models: ModelsConfig = field(default_factory=ModelsConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    speaker: SpeakerConfig = field(default_factory=SpeakerConfig)
    hints: HintsConfig = field(default_factory=HintsConfig)
    llm: LlmConfig = field(default_factory=LlmConfig)
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    def replace(self, section: str, **values: Any) -> Config:
        """A copy with some keys of one section changed (command-line options), validated."""
        current = getattr(self, section)
        hints = get_type_hints(type(current))
        checked = {}
        for key, raw in values.items():
            f = next((f for f in dataclasses.fields(current) if f.name == key), None)
            if f is None:
                raise ConfigError(f"unknown configuration key {section}.{key}")
            checked[key] = _validate(f, hints[key], raw, f"{section}.{key}", source="the command line")
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **checked)})


def _sections() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in dataclasses.fields(Config)}


def _allowed(f: dataclasses.Field, typ: Any) -> str:
    meta = f.metadata
    if meta.get("allowed"):
        return meta["allowed"]
    if meta.get("choices"):
        return "one of " + ", ".join(meta["choices"])
    if meta.get("language"):
        return "auto, a Whisper language code such as en, ko, zh, ja, or a comma-separated list of codes"
    if typ is bool:
        return "true or false"
    if typ is str and not meta.get("empty"):
        return "non-empty text"
    kind = {int: "an integer", float: "a number", str: "text", list[int]: "a list of integers"}.get(
        typ, "a list of text"
    )
    low, high = meta.get("low"), meta.get("high")
    if low is not None and high is not None:
        return f"{kind} from {low:g} to {high:g}"
    return kind


def _whisper_languages() -> frozenset[str]:
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return frozenset(_LANGUAGE_CODES)


def _coerce_env(raw: str, typ: Any) -> Any:
    """Environment values are strings; turn them into the field's type before validation."""
    if typ is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        return raw
    if typ is int:
        try:
            return int(raw)
        except ValueError:
            return raw
    if typ is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    if get_origin(typ) is list:
        text = raw.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return raw
        parts = [part for part in (p.strip() for p in text.split(os.pathsep if os.pathsep in text else ",")) if part]
        if get_args(typ) == (int,):
            try:
                return [int(p) for p in parts]
            except ValueError:
                return raw
        return parts
    return raw


def _validate(f: dataclasses.Field, typ: Any, value: Any, key: str, *, source: str) -> Any:
    def bad() -> ConfigError:
        return ConfigError(f"invalid value {value!r} for {key} (from {source})", f"allowed: {_allowed(f, typ)}")

    if f.metadata.get("norm"):
        normal = f.metadata["norm"](value)
        if normal is None:
            raise bad()
        return normal
    if typ is bool:
        if not isinstance(value, bool):
            raise bad()
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            # NaN would pass every range check below (all comparisons with it are false).
            raise bad()
        value = float(value)
    elif get_origin(typ) is list:
        (item,) = get_args(typ)
        if not isinstance(value, list) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            raise bad()
    elif typ is str:
        # An empty model or database URL would otherwise fail later, far from its cause
        # ("" is the current directory: "database path /home/me is a directory").
        if not isinstance(value, str) or (not f.metadata.get("empty") and not value.strip()):
            raise bad()
    meta = f.metadata
    if meta.get("choices") and value not in meta["choices"]:
        raise bad()
    if meta.get("language"):
        value = value.strip().lower().replace(" ", "")
        codes = value.split(",")
        if value != "auto" and (not all(codes) or not set(codes) <= _whisper_languages()):
            raise bad()
    if meta.get("low") is not None and value < meta["low"]:
        raise bad()
    if meta.get("high") is not None and value > meta["high"]:
        raise bad()
    return value


def load_config(path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any), apply ``STALK_*`` overrides, validate, and freeze."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path).expanduser()
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(
                f"configuration file {p} not found", "check --config, or copy config.example.toml to start from"
            ) from None
        except IsADirectoryError:
            raise ConfigError(
                f"configuration file {p} is a directory", "pass the .toml file itself to --config"
            ) from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"configuration file {p} is not UTF-8 text (byte {exc.start})", "save it as UTF-8"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read configuration file {p} ({exc.strerror or exc})",
                "check its permissions, or pass another file to --config",
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"configuration file {p} is not valid TOML ({exc})",
                "fix the syntax; config.example.toml shows every key",
            ) from None

    sections = _sections()
    for name, value in data.items():
        if name not in sections:
            raise ConfigError(f"unknown section [{name}] in {path}", "allowed: " + ", ".join(sections))
        if not isinstance(value, dict):
            raise ConfigError(f"{name} in {path} must be a section [{name}]")

    built: dict[str, Any] = {}
    for name, cls in sections.items():
        hints = get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        given = dict(data.get(name, {}))
        for key in given:
            if key not in fields:
                raise ConfigError(f"unknown key {name}.{key} in {path}", "allowed: " + ", ".join(fields))
        values: dict[str, Any] = {}
        for key, f in fields.items():
            env_key = f"{ENV_PREFIX}{name}_{key}".upper()
            if env_key in env:
                raw = env[env_key]
                values[key] = _validate(
                    f,
                    hints[key],
                    _coerce_env(raw, hints[key]),
                    f"{name}.{key}",
                    source=f"environment variable {env_key}",
                )
            elif key in given:
                values[key] = _validate(f, hints[key], given[key], f"{name}.{key}", source=str(path))
        built[name] = cls(**values)

    known = {f"{ENV_PREFIX}{s}_{f.name}".upper() for s, c in sections.items() for f in dataclasses.fields(c)}
    for env_key in env:
        if env_key.startswith(ENV_PREFIX) and env_key not in known:
            log.warning("ignoring unknown setting %s (no such configuration key)", env_key)
    return Config(**built)


def describe_defaults() -> list[tuple[str, str, Any, str]]:
    """(section, key, default, help) for every key: the source of config.example.toml's truth."""
    rows = []
    defaults = Config()
    for name in _sections():
        section = getattr(defaults, name)
        for f in dataclasses.fields(section):
            rows.append((name, f.name, getattr(section, f.name), f.metadata["help"]))
    return rows


def example_toml() -> str:
    """config.example.toml, generated from the fields above so the two never disagree."""
    import textwrap

    def fmt(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(json.dumps(x) for x in v) + "]"
        return repr(v) if isinstance(v, float) else str(v)

    lines = [
        "# S-Talk configuration. Every key is shown with its default.",
        "# Any key can be overridden by an environment variable STALK_<SECTION>_<KEY>,",
        "# e.g. STALK_ASR_MODEL=small or STALK_STORAGE_URL=postgresql://... .",
        "# Secrets (DISCORD_TOKEN) are read from the environment only, never from this file.",
        "# Use it with: python -m bot replay --config config.toml ... (or STALK_* variables alone).",
        "# Regenerate after changing bot/config.py: python -m bot.config > config.example.toml",
    ]
    current = None
    for section, key, value, help in describe_defaults():
        if section != current:
            lines += ["", f"[{section}]"]
            current = section
        lines += ["# " + line for line in textwrap.wrap(help, 96)]
        lines.append(f"{key} = {fmt(value)}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(example_toml(), end="")
