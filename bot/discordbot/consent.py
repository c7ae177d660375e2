"""Who is processed in a call, and what the people in it are told."""

from __future__ import annotations

from collections.abc import Iterable

from storage.settings import Consents
from storage.vocab import ConsentMode


def is_processed(user_id: int, mode: ConsentMode, consents: Consents) -> bool:
    if user_id in consents.opted_out:
        return False
    if mode == ConsentMode.OPT_IN:
        return user_id in consents.opted_in
    return True


def excluded(members: Iterable[int], mode: ConsentMode, consents: Consents) -> set[int]:
    """The users whose packets the receiver must drop before decoding.

    In notice mode that is whoever opted out; in opt-in mode, also everyone present who
    has not opted in (the receiver only knows a deny list, so it is rebuilt as people join).
    """
    out = set(consents.opted_out)
    if mode == ConsentMode.OPT_IN:
        out |= {m for m in members if m not in consents.opted_in}
    return out


def notice_text(*, started_by: str, mode: ConsentMode, live_transcript: bool, where: str | None = None) -> str:
    who = (
        "everyone in this channel is transcribed unless they use `/optout`"
        if mode == ConsentMode.NOTICE
        else "only people who used `/optin` in this server are transcribed; everyone else is ignored"
    )
    lines = [
        f"**S-Talk is now transcribing this voice channel** (started by {started_by}).",
        f"- What is processed: {who}. Their speech is turned into text and stored with who said it and when; "
        "the audio itself is not kept.",
        "- `/optout` stops processing your voice at once (your packets are dropped before decoding); "
        "`/optin` resumes it. `/privacy` says what is stored and for how long; `/forget` deletes what is stored "
        "about you.",
    ]
    if live_transcript:
        lines.append(f"- A live transcript is posted{' in ' + where if where else ' here'}.")
    lines.append("- `/leave` stops the session.")
    return "\n".join(lines)
