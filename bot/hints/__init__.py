"""Lull detection and topic hints.

When a conversation stalls, each opted-in participant privately gets a few topic
suggestions grounded in what the group has been saying, in the language they speak.

Modules, one job each:

- ``state``     conversation state from voice activity: presence, speech, turn gaps/rate, speaking share
- ``awkward``   awkwardness signals from content: monologue, short answers, backchannels, unanswered question
- ``lull``      the lull detector (threshold, active stretch, cooldown, session maximum, the signals)
- ``languages`` each participant's language, the languages suggestions are prepared in
- ``terms``     salient terms of recent talk, the conversation's language
- ``llm``       prompt, request and answer parsing for any OpenAI-compatible chat server
- ``sanitize``  model output made safe: plain text, no links or mentions, no echoes of the transcript
- ``fallback``  built-in suggestions from salient terms when no model answers
- ``preparer``  keeps a fresh model suggestion set ready in the background (virtual-time aware)
- ``engine``    ``HintEngine``: the pipeline listener tying them together, delivering and storing
- ``replay``    printing delivery and recipients for ``replay``

Delivery interface (what the Discord bot implements)
----------------------------------------------------

``HintEngine(config, clock, delivery, recipients=provider, recorder=recorder, session_id=id)``
is a ``PipelineListener``: pass it in the pipeline's ``listeners`` (before participants are
added, so it sees them join), set ``engine.session_id`` after ``pipeline.open``, and call
``engine.close()`` when the call ends.

``recipients`` is a ``Callable[[], list[Recipient]]`` called at each lull: return the
participants who are present *and opted in* (``engine.present()`` lists who is present;
``Recipient(key, name, user_id)`` with ``key`` the pipeline's speaker key).

``delivery`` has one method, ``deliver(hint: Hint) -> list[RecipientResult]``, called (once per
language the recipients speak, at each lull) from a
worker thread of the engine (never an event loop; an asyncio bot schedules its coroutine
with ``asyncio.run_coroutine_threadsafe`` and waits for the result). ``Hint`` carries
``at`` (call time), ``texts`` (plain text, safe to send as-is), ``sources`` per text and
``source`` (model name or ``'fallback'``), ``language``, ``recipients`` (those who speak it),
the lull's times and ``signals`` (why it came sooner than plain silence). The delivery must try every recipient even when one fails (a closed DM) and return
one ``RecipientResult(recipient, ok, error)`` per recipient; an exception counts as a failure
for all. Each text is stored as a ``Suggestion`` with ``recipients`` = the names it reached.
"""

from bot.hints.engine import Delivered, HintEngine
from bot.hints.types import Hint, HintDelivery, Recipient, RecipientProvider, RecipientResult

__all__ = ["Delivered", "Hint", "HintDelivery", "HintEngine", "Recipient", "RecipientProvider", "RecipientResult"]
