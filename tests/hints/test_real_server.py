"""A real OpenAI-compatible server: llama-cpp-python serving SmolLM2-135M-Instruct."""

from __future__ import annotations

import re

import pytest

from bot.hints.llm import LlmError, LlmSettings, LlmSuggester
from bot.hints.terms import Line
from storage.plaintext import has_link, has_mention
from tests.hints.conftest import hints_config, replay_call
from tests.hints.servers import LlamaServer

THRESHOLD = 5.0
HIKE = [
    Line("alice", "I just got back from hiking in the Alps with my sister.", 10.0, "en"),
    Line("bob", "Oh nice, which trail did you take? I always wanted to see the Matterhorn.", 14.0, "en"),
    Line("alice", "We did the Haute Route, it took eight days and the mountain huts were amazing.", 20.0, "en"),
]


@pytest.mark.slow
def test_real_server_speaks_the_protocol_with_json_schema(llama_server: LlamaServer):
    s = LlmSuggester(
        LlmSettings(
            base_url=llama_server.base_url,
            model=llama_server.model,
            api_key="",
            timeout=120,
            connect_timeout=3,
            temperature=0.7,
            max_tokens=200,
            structured="auto",
        )
    )
    outcomes = []
    for _ in range(3):
        try:
            kept, dropped = s.suggest(HIKE, "en", [])
            outcomes.append(("ok", kept))
            for text in kept:
                assert not has_link(text) and not has_mention(text) and len(text) <= 120
        except LlmError as exc:
            # A 135M model often says nothing usable; that must come out as a clear error.
            outcomes.append(("error", str(exc)))
            assert re.match(r"(no usable suggestion|answer is not a list)", str(exc)), exc
    # The server took the schema-constrained JSON request (no fallback to plainer modes).
    assert s._modes[0] == "json_object_schema", outcomes
    reply = s.client().chat.completions.create(
        model=llama_server.model, max_tokens=8, messages=[{"role": "user", "content": "Say hi"}]
    )
    assert reply.model and reply.choices[0].message.content is not None


@pytest.mark.slow
def test_replayed_call_with_the_real_model(two_lulls, tmp_path, tiny_en, llama_server: LlamaServer):
    config = hints_config(
        llm_base_url=llama_server.base_url,
        llm_model=llama_server.model,
        llm_timeout_seconds=120,
        hints_cooldown_seconds=20,
        hints_prepare_interval_seconds=10,
    )
    run = replay_call(config, two_lulls, tmp_path, tiny_en)
    silences = two_lulls.silences(THRESHOLD)
    # Every participant gets suggestions during each lull, whatever the model managed.
    assert len(run.hints) == 2, run.printed
    for hint, (quiet_from, quiet_to) in zip(run.hints, silences):
        assert quiet_from + THRESHOLD - 0.3 <= hint["at"] < quiet_to
        assert hint["names"] == ["alice", "bob"] and len(hint["texts"]) == 3
        assert hint["source"] in (llama_server.model, "fallback")
    for s in run.detail.suggestions:
        assert s.source in (llama_server.model, "fallback")
        assert not has_link(s.text) and not has_mention(s.text) and len(s.text) <= 120
    # The real model answered (usable or not): with the server dead the fallback alone would
    # have filled both hints and the checks above would still hold.
    m = re.search(r"model answers: (\d+)", run.printed)
    assert m and int(m[1]) >= 1, run.printed
