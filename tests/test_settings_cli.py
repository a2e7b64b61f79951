"""`imagine-bot settings`, run as a real process on a real database."""

from __future__ import annotations

from tests.test_cli import cli_env, run_cli


async def test_defaults_set_at_the_shell_are_used_by_imagine_for_that_user(
        tmp_path, fake_segmind):
    env = cli_env(tmp_path, fake_segmind.base_url)
    status, out, err = await run_cli("settings", "set", "--user", "ann", "--model", "kolors",
                                     "--steps", "30", env=env)
    assert status == 0, err

    status, _, err = await run_cli("imagine", "a lighthouse", "--user", "ann", env=env)

    assert out.startswith("Saved your defaults: model kolors, steps 30.")
    assert status == 0 and "kolors 1024x1024 30 steps" in err


async def test_a_value_out_of_range_is_one_sentence_and_status_1(tmp_path):
    status, out, err = await run_cli("settings", "set", "--steps", "30",
                                     env=cli_env(tmp_path, None))

    assert (status, out) == (1, "")
    assert err.strip().splitlines()[-1] == (  # after the log lines
        "steps '30' is not allowed: flux-schnell takes a whole number from 1 to 8.")
    assert "Traceback" not in err


async def test_a_servers_defaults_set_with_scope_and_workspace_show_for_its_members(tmp_path):
    env = cli_env(tmp_path, None)
    status, _, err = await run_cli("settings", "set", "--scope", "discord:555", "--workspace",
                                   "--ar", "16:9", env=env)
    assert status == 0, err

    status, out, err = await run_cli("settings", "show", "--scope", "discord:555", "--user",
                                     "1001", env=env)

    assert status == 0, err
    assert "aspect: 16:9 (server default)" in out


async def test_workspace_without_a_scope_is_refused_in_one_sentence(tmp_path):
    status, _, err = await run_cli("settings", "set", "--workspace", "--steps", "2",
                                   env=cli_env(tmp_path, None))

    assert status == 1
    assert err.strip().splitlines()[-1] == (
        "--workspace needs --scope, as in --scope discord:GUILD_ID.")
