"""The Discord side of S-Talk: the bot, its per-guild live sessions, consent and the live transcript.

Discord types stay here and in ``cogs/``; the speech pipeline only sees user ids and PcmFrames.

Where the other features plug in:

* a listener on every live session: append a factory ``(LiveSession) -> PipelineListener | None``
  to ``bot.sessions.listener_factories`` (speaker verification, hints); a listener for one
  running session (``/enroll``): ``session.pipeline.add_listener`` / ``remove_listener``;
* what a worker thread may know about the call: ``LiveSession.presence`` (a frozen snapshot the
  event loop publishes), never discord.py objects; ``presence.is_processed(user_id)`` is the one
  rule for whose speech is processed;
* cross-session changes (``/forget``, voiceprints, channel moves, consent): ``SessionManager``;
* shared Discord helpers (escaping, call clock, chunking, confirm view, guild guard): ``kit``;
* DMs from pipeline worker threads (hints): ``dm.DirectMessenger(bot).send(user_id, text)``; who
  opted in: ``storage.settings.hint_recipients(db, user_ids)``;
* ``/forget``: append ``forget.Forgetter(what, delete)`` to ``bot.forgetters``;
* more cogs (``cogs.enroll``, ``cogs.log``): ``app.EXTENSIONS``;
* more ``doctor`` checks: ``bot.doctor.CHECKS``.
"""
