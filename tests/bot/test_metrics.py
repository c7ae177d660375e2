"""``[metrics]``: counters in Prometheus text format and a health check, scraped over real HTTP
from the server the bot starts (bot/metricsserver.py), with a real call through the voice double
counted in them."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request

import pytest

from bot.config import load_config
from bot.discordbot.metrics import start_metrics
from bot.metrics import Registry
from bot.metricsserver import CONTENT_TYPE, MetricsServer
from tests.voice.double import encode, librispeech, load_speech

LABEL = r'[a-z_]+="(?:[^"\\]|\\.)*"'  # a value escapes backslash, quote and newline
SAMPLE = re.compile(rf"^[a-z_]+(\{{{LABEL}(,{LABEL})*\}})? -?([0-9.e+-]+|\+Inf)$")


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def _values(body: str) -> dict[str, float]:
    """Each sample line as name{labels} -> value; every line is a comment or a well-formed sample."""
    out = {}
    for line in body.splitlines():
        if line.startswith("# "):
            assert line.split()[1] in ("HELP", "TYPE"), line
            continue
        assert SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def test_the_endpoint_serves_counters_and_health_over_http() -> None:
    reg = Registry()
    said = reg.counter("stalk_test_total", "Things.", ("kind",))
    waited = reg.histogram("stalk_test_seconds", "Waits.", (0.5, 1.0))
    said.inc(kind="a")
    said.inc(2, kind='b"q')
    for v in (0.2, 0.7, 3.0):
        waited.observe(v)
    healthy = {"ok": True}
    server = MetricsServer(
        "127.0.0.1", 0, registry=reg, health={"thing": lambda: (healthy["ok"], "fine" if healthy["ok"] else "down")}
    ).start()
    try:
        host, port = server.address
        assert host == "127.0.0.1"  # the loopback, unless [metrics] host says otherwise
        status, ctype, body = _get(f"http://{host}:{port}/metrics")
        assert status == 200 and ctype == CONTENT_TYPE
        v = _values(body)
        assert v['stalk_test_total{kind="a"}'] == 1 and v['stalk_test_total{kind="b\\"q"}'] == 2
        assert v['stalk_test_seconds_bucket{le="0.5"}'] == 1 and v['stalk_test_seconds_bucket{le="1"}'] == 2
        assert v['stalk_test_seconds_bucket{le="+Inf"}'] == 3 and v["stalk_test_seconds_count"] == 3
        assert v["stalk_test_seconds_sum"] == pytest.approx(3.9)
        assert "# TYPE stalk_test_seconds histogram" in body and "# TYPE stalk_test_total counter" in body

        status, ctype, body = _get(f"http://{host}:{port}/healthz")
        assert (status, ctype) == (200, "application/json")
        assert json.loads(body) == {"status": "ok", "checks": {"thing": {"ok": True, "detail": "fine"}}}
        healthy["ok"] = False
        status, _, body = _get(f"http://{host}:{port}/healthz")
        assert status == 503 and json.loads(body)["status"] == "failing"
        assert _get(f"http://{host}:{port}/other")[0] == 404
    finally:
        server.stop()


def test_a_port_in_use_is_one_clear_error() -> None:
    from bot.errors import StalkError

    first = MetricsServer("127.0.0.1", 0).start()
    try:
        with pytest.raises(StalkError, match="cannot serve metrics on 127.0.0.1"):
            MetricsServer("127.0.0.1", first.address[1])
    finally:
        first.stop()


def test_off_by_default() -> None:
    assert start_metrics(object(), load_config(None, env={})) is None


@pytest.mark.slow
async def test_the_bot_counts_a_real_call(make_bot) -> None:
    h = await make_bot(voice=True, env={"STALK_SUMMARY_USE_MODEL": "false"})  # no LLM server here
    config = load_config(None, env={"STALK_METRICS_ENABLED": "true", "STALK_METRICS_PORT": "0"})
    stop = start_metrics(h.bot, config)
    assert stop is not None
    try:
        host, port = h.bot.metrics_server.address
        url = f"http://{host}:{port}"
        before = _values((await asyncio.to_thread(_get, url + "/metrics"))[2])

        # The harness's bot is logged in over REST but its gateway is a stand-in: not ready.
        status, _, body = await asyncio.to_thread(_get, url + "/healthz")
        health = json.loads(body)
        assert status == 503 and health["checks"]["database"]["ok"] and not health["checks"]["discord"]["ok"]

        await h.command("ann", "join")
        await h.server.wait_session()
        await h.server.stream(h.users["ann"], encode(load_speech(librispeech("1688", 2))))
        during = _values((await asyncio.to_thread(_get, url + "/metrics"))[2])
        assert during["stalk_calls_in_progress"] == 1
        assert during['stalk_voice_packets_total{outcome="received"}'] > 0
        await h.command("ann", "leave")
        await h.rest.wait_for(lambda reqs: h.bot.sessions.get(h.guild.id) is None)

        after = _values((await asyncio.to_thread(_get, url + "/metrics"))[2])
        stored = after["stalk_utterances_total"] - before["stalk_utterances_total"]
        assert stored >= 1
        assert (
            after["stalk_utterance_latency_seconds_count"] - before["stalk_utterance_latency_seconds_count"] == stored
        )
        assert after["stalk_calls_in_progress"] == 0
        # The ended call's packets stay counted (a counter never goes down).
        received = 'stalk_voice_packets_total{outcome="received"}'
        assert after[received] >= during[received] > 0
        assert after['stalk_calls_ended_total{status="completed"}'] >= 1
    finally:
        stop()
