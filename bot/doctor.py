"""Health checks for running the bot: each says what it found, or what is wrong and how to fix it.

``CHECKS`` is a plain list of (name, function): a check returns a short description of what
it found, or raises ``CheckFailed(what, fix)`` (the bot cannot do its job: FAIL, exit status 1)
or ``CheckWarning(what, fix)`` (it runs, with less: WARN; a missing LLM server only means the
built-in suggestions are sent). Checks test what the bot will do, not only that something
answers: the LLM server gets a real one-token chat request, the models are loaded.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bot.config import Config
from bot.errors import StalkError
from storage.vocab import ConsentMode

log = logging.getLogger(__name__)

T = TypeVar("T")


class CheckFailed(StalkError):
    pass


class CheckWarning(StalkError):
    """The bot runs without it, with less (said in ``what``)."""


@dataclass(frozen=True)
class DoctorContext:
    config: Config
    db_url: str
    env: dict[str, str]


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool  # False only for a failure; a warning is ok (the bot runs)
    detail: str  # what was found, or what is wrong
    fix: str | None = None
    warning: bool = False

    def lines(self) -> list[str]:
        mark = "WARN" if self.warning else "ok  " if self.ok else "FAIL"
        out = [f"{mark}  {self.name}: {self.detail}"]
        if self.fix:
            out.append(f"      fix: {self.fix}")
        return out


def check_token(ctx: DoctorContext) -> str:
    if not ctx.env.get("DISCORD_TOKEN", "").strip():
        raise CheckFailed(
            "DISCORD_TOKEN is not set",
            "export DISCORD_TOKEN=<the bot token from the Discord developer portal, Bot page>",
        )
    return "DISCORD_TOKEN is set (it is checked by Discord when the bot logs in)"


def check_opus(ctx: DoctorContext) -> str:
    from discord import opus as dopus

    name = ctx.config.discord.opus_library
    try:
        if name:
            lib = ctypes.CDLL(name)
        else:
            if not dopus.is_loaded() and not dopus._load_default():
                raise OSError("not found")
            lib = dopus._lib
        lib.opus_get_version_string.restype = ctypes.c_char_p
        version = lib.opus_get_version_string().decode()
    except (OSError, AttributeError) as exc:
        where = f"{name!r}" if name else "the system library"
        raise CheckFailed(
            f"cannot load libopus from {where} ({exc})",
            "install it (apt-get install -y libopus0; macOS: brew install opus), or set "
            "[discord] opus_library to its path",
        ) from None
    return version


def check_davey(ctx: DoctorContext) -> str:
    try:
        import davey

        session = davey.DaveSession(davey.DAVE_PROTOCOL_VERSION, 1, 1)
        session.get_serialized_key_package()
    except Exception as exc:
        raise CheckFailed(
            f"davey (DAVE end-to-end encryption) does not work: {type(exc).__name__}: {exc}",
            "pip install 'davey==0.1.7' (Discord voice needs DAVE since March 2026)",
        ) from None
    return f"davey, DAVE protocol version {davey.DAVE_PROTOCOL_VERSION}"


def _load(what: str, fix: str, load: Callable[[], T]) -> T:
    """Load a model for a check: a StalkError keeps its own fix, anything else is reported as is."""
    try:
        return load()
    except StalkError as exc:
        raise CheckFailed(f"{what}: {exc.what}", exc.fix or fix) from None
    except Exception as exc:
        raise CheckFailed(f"{what} does not load: {type(exc).__name__}: {exc}", fix) from None


def check_whisper(ctx: DoctorContext) -> str:
    from bot.asr.model import check_device, load_whisper, resolve_model

    asr = ctx.config.asr
    what, fix = f"Whisper model {asr.model!r}", "set [asr] model to a size name or a CTranslate2 model directory"
    choice = _load(what, fix, lambda: check_device(asr.device, asr.compute_type))
    path = _load(what, fix, lambda: resolve_model(asr.model, ctx.config.models.dirs, asr.download_root))
    _load(
        what,
        fix,
        lambda: load_whisper(
            path,
            device=choice.device,
            compute_type=choice.compute_type,
            workers=1,
            cpu_threads=asr.cpu_threads,
            search_dirs=ctx.config.models.dirs,
            download_root=asr.download_root,
        ),
    )
    return f"faster-whisper {asr.model!r} from {Path(path).resolve()} loads ({choice})"


def check_speaker_model(ctx: DoctorContext) -> str:
    from bot.speaker.model import load_speaker_model

    fix = (
        "set [speaker] model (or STALK_SPEAKER_MODEL) to a WeSpeaker-format ONNX file, or to auto: the default "
        "model, downloaded once (here, or on the first /enroll) into ~/.cache/s-talk/models/speaker"
    )
    # With model = auto and nothing found, this fetches the default model now (checksum verified).
    model = _load(f"speaker model {ctx.config.speaker.model!r}", fix, lambda: load_speaker_model(ctx.config))
    return f"{model.info.name} from {Path(model.info.path).resolve()} loads ({model.info.dim}-dim voiceprints, sha256 {model.model_id[:12]})"


def check_database(ctx: DoctorContext) -> str:
    from sqlalchemy import select

    from storage.db import open_database
    from storage.models import GuildSettings, utcnow

    try:
        db = open_database(ctx.db_url)
    except StalkError as exc:
        raise CheckFailed(f"database: {exc.what}", exc.fix) from None
    probe = "doctor-probe"
    try:
        # Write and read back inside one transaction that is rolled back: nothing is left.
        with db.write_session() as s:
            s.add(GuildSettings(guild_id=probe, consent_mode=ConsentMode.NOTICE, updated_at=utcnow()))
            s.flush()
            found = s.scalar(select(GuildSettings.consent_mode).where(GuildSettings.guild_id == probe))
            s.rollback()
        if found != ConsentMode.NOTICE:
            raise CheckFailed(
                f"database {db.label}: a row written could not be read back", "check the database server or file"
            )
    except CheckFailed:
        raise
    except Exception as exc:
        raise CheckFailed(
            f"database {db.label} cannot be written: {getattr(exc, 'orig', exc)}",
            "make the file and its folder writable, close other programs using it, or pass --db",
        ) from None
    finally:
        db.close()
    return f"{db.label} (migrated, written and read back)"


def check_llm(ctx: DoctorContext) -> str:
    import openai

    h, c = ctx.config.hints, ctx.config.llm
    if not h.enabled:
        return "hints are off ([hints] enabled = false): no LLM server needed"
    if not c.enabled:
        return "[llm] enabled = false: hints use the built-in suggestions only"
    start = (
        "start one: Ollama (ollama serve; ollama pull llama3.1:8b) or llama.cpp's server, or set [llm] "
        "base_url to where yours listens; [hints] enabled = false turns hints off"
    )
    # Without a usable model hints still go out, from the built-in suggestions: a warning.
    meanwhile = "; meanwhile hints use the built-in suggestions"
    client = openai.OpenAI(
        base_url=c.base_url,
        api_key=c.api_key or "not-needed",
        max_retries=0,
        timeout=openai.Timeout(5.0, connect=min(c.connect_timeout_seconds, 5.0)),
    )
    api = "check that [llm] base_url is the server's OpenAI-compatible API (it usually ends in /v1)"
    try:
        try:
            models = [m.id for m in client.models.list()]
        except openai.APIConnectionError as exc:
            raise CheckWarning(
                f"no LLM server answers at {c.base_url} ({exc.__cause__ or exc}){meanwhile}", start
            ) from None
        except openai.APIStatusError as exc:
            fix = "set [llm] api_key (or STALK_LLM_API_KEY)" if exc.status_code in (401, 403) else api
            raise CheckWarning(
                f"the LLM server at {c.base_url} answered HTTP {exc.status_code} to /models{meanwhile}", fix
            ) from None
        except openai.OpenAIError as exc:
            raise CheckWarning(
                f"the LLM server at {c.base_url} gave an answer that is not a model list "
                f"({type(exc).__name__}){meanwhile}",
                api,
            ) from None
        # Ollama lists "llama3.1:latest" for a model pulled as "llama3.1".
        if c.model not in models and f"{c.model}:latest" not in models:
            has = ", ".join(sorted(models)[:10]) or "none"
            raise CheckWarning(
                f"model {c.model!r} is not on the LLM server at {c.base_url} (it has: {has}){meanwhile}",
                f"ollama pull {c.model} (Ollama), or set [llm] model to one the server has",
            )
        # Listing models proves little (a server can list one it cannot run): ask for one token.
        started = time.perf_counter()
        try:
            reply = client.with_options(timeout=openai.Timeout(c.timeout_seconds, connect=5.0)).chat.completions.create(
                model=c.model, messages=[{"role": "user", "content": "Say OK."}], max_tokens=1, temperature=0.0
            )
            reply.choices[0].message  # noqa: B018 - a chat completion, not an error page
        except openai.APITimeoutError:
            raise CheckWarning(
                f"{c.model!r} at {c.base_url} did not answer a one-token chat request within "
                f"{c.timeout_seconds:g} s{meanwhile}",
                "check the server's load, or raise [llm] timeout_seconds",
            ) from None
        except openai.APIStatusError as exc:
            detail = " ".join(str(exc).split())[:160]
            raise CheckWarning(
                f"{c.model!r} is listed at {c.base_url} but a one-token chat request failed: HTTP "
                f"{exc.status_code} ({detail}){meanwhile}",
                "check the server's log (the model may not fit in memory, or not be a chat model)",
            ) from None
        except (openai.OpenAIError, AttributeError, IndexError, TypeError) as exc:
            raise CheckWarning(
                f"{c.model!r} is listed at {c.base_url} but a one-token chat request failed "
                f"({type(exc).__name__}){meanwhile}",
                api,
            ) from None
    finally:
        client.close()
    return f"{c.model!r} served at {c.base_url} (answered a one-token chat request in {time.perf_counter() - started:.1f} s)"


Check = Callable[[DoctorContext], str]

CHECKS: list[tuple[str, Check]] = [
    ("discord token", check_token),
    ("opus", check_opus),
    ("davey", check_davey),
    ("whisper model", check_whisper),
    ("speaker model", check_speaker_model),
    ("database", check_database),
    ("llm server", check_llm),
]


def run_checks(ctx: DoctorContext, checks: list[tuple[str, Check]] | None = None) -> list[CheckResult]:
    results = []
    for name, check in CHECKS if checks is None else checks:
        try:
            results.append(CheckResult(name, True, check(ctx)))
        except CheckWarning as exc:
            results.append(CheckResult(name, True, exc.what, exc.fix, warning=True))
        except CheckFailed as exc:
            results.append(CheckResult(name, False, exc.what, exc.fix))
        except Exception as exc:  # a bug in a check must not hide the others
            log.exception("check %s crashed", name)
            results.append(
                CheckResult(
                    name, False, f"the check itself failed: {type(exc).__name__}: {exc}", "report this as a bug"
                )
            )
    return results
