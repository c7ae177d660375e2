"""Making untrusted text plain: the one place that decides what others' words may look like.

Names (Discord display names, replay NAMEs), transcript lines and model output are chosen or
said by other people. Before S-Talk shows them anywhere (a Discord message, an embed, the
operator's terminal, a text export) or hands them to the language model, they go through here:

* ``plain``: one line of visible text. Terminal escape sequences, control characters,
  invisible and direction-changing characters (zero-width, soft hyphen, bidi overrides,
  Unicode tag characters, fillers) are removed, compatibility forms folded (NFKC: fullwidth
  ``ｈｔｔｐｓ`` is ``https``), whitespace collapsed, the length bounded.
* ``has_link`` / ``has_mention``: whether text holds anything a reader could follow as a link
  (any scheme, ``h@ttps`` or ``hxxp`` spellings, ``evil.tk/x``, ``evil[.]tk``, ``discord.gg``)
  or a Discord mention, however it is split by invisible characters or markdown.
* ``defang``: links made unfollowable but readable (``evil[.]tk``, ``https[:]//``).
* ``for_discord``: plain, defanged, ``@`` made inert and every markdown character escaped, so
  a name like ``**[Support](https://evil.tk)**`` shows as typed and links nowhere.
* ``for_prompt``: plain and defanged, with ``<``/``>`` replaced, so nothing closes the
  prompt's ``<transcript>`` block: names are data exactly like transcript lines.

It lives in ``storage``, the lowest layer, because the exports need it as much as the bot's
messages and prompts do, and nothing in ``storage`` may import ``bot``.

Everything here runs in time linear in the input: single passes of ``str.translate``-like
substitutions and regular expressions without nested or adjacent unbounded repetition
(``benchmarks/bench_plaintext.py`` compares CPU for n and 4n characters).
"""

from __future__ import annotations

import re
import unicodedata

# Longest input looked at: NFKC can make one character 18, so the work is bounded first.
MAX_INPUT = 16_384

# ESC-introduced terminal sequences: CSI (colours, cursor moves), OSC (titles, hyperlinks,
# clipboard), DCS/SOS/PM/APC strings, and the two-character escapes; C1 CSI too.
_TERMINAL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[PX^_][^\x1b\x9c]*(?:\x1b\\|\x9c)?"
    r"|\x1b[ -~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
)
# Characters that show nothing or change how what follows shows: Unicode's format characters
# (Cf: soft hyphen, zero-width space/joiners, bidi embeddings, overrides and isolates, word
# joiner, BOM, interlinear annotation, tag characters ...), lone surrogates (they cannot even
# be written as UTF-8), and the blank "letters" used for invisible names (Hangul fillers,
# combining grapheme joiner, Khmer inherent vowels, Mongolian variation selectors, the
# variation selector supplement used to smuggle data). tests/test_plaintext.py checks that
# every Cf character of the running Python's Unicode data is covered.
_INVISIBLE = re.compile(
    "["
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0d\ufeff\uffa0\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e007f\U000e0100-\U000e01ef"
    "\ud800-\udfff"
    "]"
)
# Two or more emoji presentation selectors in a row carry no meaning, only hidden bits.
_SELECTOR_RUN = re.compile(r"([\ufe0e\ufe0f])[\ufe0e\ufe0f]+")
_SPACE = re.compile(r"[\s\u2800]+")  # \s covers newlines, tabs, U+2028/2029, U+0085, U+1680
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# -- links ------------------------------------------------------------------------------------
# Checked on a skeleton of the text: plain, lower case, with the characters that can split a
# link without a reader noticing (markdown, '@', quotes, backslashes) taken out.
_SPLITTERS = re.compile(r"[@*_~`|\\'\"]")
_SCHEME = re.compile(r":\s*[/\\]\s*[/\\]|:\s*\[\s*[/\\]")  # https://, h@ttps://, https:\\, [:]/
_SCHEME_WORD = re.compile(r"(?<![a-z])(?:h[tx]{2}ps?|www|ftp)(?![a-z])")  # http, hxxps, www ...
_DOMAIN = re.compile(r"[a-z0-9-]\.[a-z]{2}")  # evil.tk, discord.gg, www.x, xn--...
_IPV4 = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_DOT_WRITTEN = re.compile(r"[\[({]\s*(?:\.|dot)\s*[\])}]|\bdot\s+(?:com|net|org|io|gg|tk|ru|xyz)\b")
# "evil .tk", "evil. tk": spaced only with TLDs that are not also English words.
_SPACED_DOMAIN = re.compile(
    r"[a-z0-9-](?:\s+\.\s*|\.\s+)(?:com|net|org|io|gg|ly|xyz|info|ru|tk|ml|ga|cf|gq|top|biz|cc|pw|su|cn|kr|uk|de)\b"
)
_INVITE = re.compile(r"\bgg\s*/\s*\w")  # "discord gg/abc"
_MENTION = re.compile(r"@\s*\w|<\s*[@#/&!:]|<a?:\w")  # @everyone, @name, <@id>, <#id>, </cmd:id>, <:emoji:id>

# -- defanging --------------------------------------------------------------------------------
# Private-use characters are looked through: callers mark search hits with them (cogs/log.py),
# and a hit ending inside "evil.tk" must not save the link from defanging.
_DEFANG_SCHEME = re.compile(r":\s*(?=[\ue000-\uf8ff]?[/\\]\s*[\ue000-\uf8ff]?[/\\])")
_DEFANG_DOT = re.compile(r"(?<=[A-Za-z0-9\-\ue000-\uf8ff])\.(?=[\ue000-\uf8ff]?[A-Za-z][\ue000-\uf8ff]?[A-Za-z])")
_DISCORD_SPECIAL = re.compile(r"([\\*_~`|<>#\[\]()])")


def plain(text: object, limit: int | None = None) -> str:
    """One line of visible characters, at most ``limit`` long (cut with "…")."""
    s = str(text)
    if len(s) > MAX_INPUT:
        s = s[:MAX_INPUT]
    if limit is not None and len(s) > 8 * limit + 64:
        s = s[: 8 * limit + 64]  # what cannot end up in the result is not worth normalising
    s = _TERMINAL.sub("", s)
    s = unicodedata.normalize("NFKC", s)
    s = _INVISIBLE.sub("", s)
    s = _SELECTOR_RUN.sub(r"\1", s)
    s = _SPACE.sub(" ", s)
    s = _CONTROL.sub("", s).strip()
    return shorten(s, limit) if limit is not None else s


def is_plain(text: str) -> bool:
    """Whether ``text`` is already one line of visible characters (single spaces, nothing
    hidden): what a typed name must be. Compatibility forms (fullwidth, halfwidth) are fine."""
    return (
        _TERMINAL.search(text) is None
        and _INVISIBLE.search(text) is None
        and _CONTROL.search(text) is None
        and _SPACE.sub(" ", text) == text
        and text == text.strip()
    )


def shorten(text: str, limit: int) -> str:
    """``text`` at most ``limit`` characters: cut at a space in its second half if there is one."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return "…"[:limit]
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


def _skeleton(text: str) -> str:
    return _SPLITTERS.sub("", plain(text).lower())


def has_link(text: str) -> bool:
    """Whether a reader could follow anything in ``text`` as a web address."""
    s = _skeleton(text)
    return any(
        p.search(s) is not None for p in (_SCHEME, _SCHEME_WORD, _DOMAIN, _IPV4, _DOT_WRITTEN, _SPACED_DOMAIN, _INVITE)
    )


def has_mention(text: str) -> bool:
    """Whether ``text`` holds a Discord mention or something that reads as one (``@name``)."""
    return _MENTION.search(plain(text).lower()) is not None


def defang(text: str) -> str:
    """Links made unfollowable but still readable: ``https[:]//evil[.]tk/x``."""
    return _DEFANG_DOT.sub("[.]", _DEFANG_SCHEME.sub("[:]", text))


def for_discord(text: object, limit: int | None = None) -> str:
    """For a Discord message or embed: shows exactly as typed (markdown escaped), links nowhere,
    mentions nobody."""
    s = defang(plain(text, limit)).replace("@", "\uff20")
    s = _DISCORD_SPECIAL.sub(r"\\\1", s)
    # A line starting "- ", "+ " or "-# " would become a list or small print.
    return "\\" + s if s[:1] in ("-", "+") else s


def for_discord_plain(text: object, limit: int | None = None) -> str:
    """For Discord fields without markdown (menu options, thread names): plain and defanged."""
    return defang(plain(text, limit)).replace("@", "\uff20")


def for_prompt(text: object, limit: int | None = None) -> str:
    """For the language model's prompt: plain data that cannot close or open a tag."""
    return defang(plain(text, limit)).replace("<", "\u2039").replace(">", "\u203a")
