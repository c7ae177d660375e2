"""The Discord side of S-Talk: the bot, its per-guild live sessions, consent and the live transcript.

Discord types stay here and in ``cogs/``; the speech pipeline only sees user ids and PcmFrames.

Where the other features plug in:

* a listener on every live session: append a factory ``(LiveSession) -> PipelineListener | None``
  to ``bot.sessions.listener_factories`` (speaker verification, hints); a listener for one
  running session (``/enroll``): ``LiveSession.add_listener`` / ``remove_listener``;
* DMs from pipeline worker threads (hints): ``dm.DirectMessenger(bot).send(user_id, text)``; who
  opted in: ``storage.settings.hint_recipients(db, user_ids)``;
* ``/forget``: append ``app.Forgetter(what, delete)`` to ``bot.forgetters``;
* more cogs (``cogs.enroll``, ``cogs.log``): ``app.EXTENSIONS``;
* more ``doctor`` checks: ``bot.doctor.CHECKS``.
"""
