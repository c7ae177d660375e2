"""Chinese in one script: Whisper writes Mandarin in Simplified or Traditional characters as
it pleases (base often in Traditional), so one call's transcript mixes both and a search for
``广州`` misses ``廣州``. Text is stored in the script the configuration asks for, converted by
OpenCC (phrase-level tables, not a character map), and search folds both scripts."""

from __future__ import annotations

from enum import StrEnum
from functools import cache


class ChineseScript(StrEnum):
    SIMPLIFIED = "simplified"
    TRADITIONAL = "traditional"
    TAIWAN = "taiwan"
    HONGKONG = "hongkong"
    AS_WRITTEN = "as_written"  # whatever Whisper wrote


# OpenCC configurations from Simplified to each target; text goes through Simplified first,
# so that Whisper's mixed output comes out uniform.
_FROM_SIMPLIFIED = {
    ChineseScript.TRADITIONAL: "s2t",
    ChineseScript.TAIWAN: "s2tw",
    ChineseScript.HONGKONG: "s2hk",
}


@cache
def _converter(config: str):
    import opencc

    return opencc.OpenCC(config)


def has_han(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" for ch in text)


def to_script(text: str, script: ChineseScript | str) -> str:
    """``text`` (Chinese) written in ``script``."""
    script = ChineseScript(script)
    if script is ChineseScript.AS_WRITTEN or not has_han(text):
        return text
    simplified = _converter("t2s").convert(text)
    target = _FROM_SIMPLIFIED.get(script)
    return simplified if target is None else _converter(target).convert(simplified)


def script_variants(term: str) -> list[str]:
    """``term`` as written, in Simplified and in Traditional: what a search looks for, so that
    either script finds text stored in the other (older rows, a server storing Traditional)."""
    if not has_han(term):
        return [term]
    return list(dict.fromkeys([term, _converter("t2s").convert(term), _converter("s2t").convert(term)]))
