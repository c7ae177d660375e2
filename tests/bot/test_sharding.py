"""Gateway sharding (``[discord] shards``, ``shard_ids``): the bot is built as discord.py's
AutoShardedClient from the config, and logs in and serves slash commands the same way.

What is not run here: connecting the shards themselves (the REST stand-in's gateway accepts and
says nothing, so no shard gets as far as IDENTIFY) and a voice call through a shard's
websocket; docs/operations.md says so.
"""

from __future__ import annotations

import discord
import pytest

from bot.config import load_config
from bot.discordbot.app import ShardedStalkBot, StalkBot, build_bot
from bot.errors import ConfigError
from storage.db import open_database


def _bot(tmp_path, env: dict[str, str]) -> StalkBot:
    db = open_database(str(tmp_path / "shards.db"))
    return build_bot(load_config(None, env=env), db)


async def _close(bot: StalkBot) -> None:
    # As `python -m bot run` does: entered (discord.py's async set-up), then closed.
    async with bot:
        pass
    bot.db.close()


async def test_one_connection_by_default(tmp_path) -> None:
    bot = _bot(tmp_path, {})
    try:
        assert type(bot) is StalkBot and not isinstance(bot, discord.AutoShardedClient)
    finally:
        await _close(bot)


async def test_auto_leaves_the_count_to_discord(tmp_path) -> None:
    bot = _bot(tmp_path, {"STALK_DISCORD_SHARDS": "auto"})
    try:
        assert isinstance(bot, ShardedStalkBot) and isinstance(bot, discord.AutoShardedClient)
        assert bot.shard_count is None and bot.shard_ids is None
    finally:
        await _close(bot)


async def test_a_process_runs_the_shards_it_names(tmp_path) -> None:
    bot = _bot(tmp_path, {"STALK_DISCORD_SHARDS": "4", "STALK_DISCORD_SHARD_IDS": "1,3"})
    try:
        assert isinstance(bot, discord.AutoShardedClient)
        assert bot.shard_count == 4 and bot.shard_ids == [1, 3]
    finally:
        await _close(bot)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"STALK_DISCORD_SHARDS": "many"}, "off, auto, or a shard count"),
        ({"STALK_DISCORD_SHARDS": "0"}, "off, auto, or a shard count"),
        ({"STALK_DISCORD_SHARD_IDS": "0"}, "needs a shard count"),
        ({"STALK_DISCORD_SHARDS": "auto", "STALK_DISCORD_SHARD_IDS": "0"}, "needs a shard count"),
        ({"STALK_DISCORD_SHARDS": "2", "STALK_DISCORD_SHARD_IDS": "2"}, "from 0 to 1"),
        ({"STALK_DISCORD_SHARDS": "2", "STALK_DISCORD_SHARD_IDS": "1,1"}, "distinct"),
        ({"STALK_DISCORD_SHARDS": "2", "STALK_DISCORD_SHARD_IDS": "one"}, "a list of integers"),
    ],
)
def test_bad_sharding_is_one_clear_error(env, says) -> None:
    with pytest.raises(ConfigError, match=says):
        load_config(None, env=env)


def test_toml_takes_a_number_or_auto(tmp_path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[discord]\nshards = 3\nshard_ids = [0, 2]\n")
    d = load_config(path, env={}).discord
    assert d.shards == "3" and d.shard_count == 3 and d.shard_ids == [0, 2]
    path.write_text('[discord]\nshards = "AUTO"\n')
    assert load_config(path, env={}).discord.shards == "auto"


async def test_the_sharded_bot_logs_in_and_serves_commands(make_bot) -> None:
    # The real login against the REST stand-in: setup_hook (stale sessions, cogs, command sync)
    # and a slash command through the tree, on the sharded client.
    h = await make_bot(env={"STALK_DISCORD_SHARDS": "2", "STALK_DISCORD_SHARD_IDS": "0,1"})
    assert isinstance(h.bot, discord.AutoShardedClient) and h.bot.shard_count == 2
    assert h.rest.where("PUT", "/commands")
    reqs = await h.command("ben", "privacy")
    (callback,) = [r for r in reqs if r.path.endswith("/callback")]
    assert "Audio is never stored" in callback.body["data"]["content"]
