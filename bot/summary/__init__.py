"""Call summaries: what was talked about, decisions and to-dos with who said them, open
questions, each point with the utterances it came from, in the call's language.

- ``lines``       the transcript as the summariser reads it (utterance ids kept)
- ``extractive``  the fallback: salient sentences per topic, cue phrases for decisions and to-dos
- ``llm``         the configured OpenAI-compatible model, in bounded pieces, then merged
- ``grounding``   which points may stay: plain, in the call's language, and each point's key
                  words found in the lines it names (no invented fact)
- ``make``        one call's summary made and stored (model first, fallback when none answers)

The conversation's shape (talk time, turns, silences, ...) is deterministic and lives in
``storage.shape``.
"""
