"""Discord -> core: who asked (Actor), where to answer (ReplyTarget), and error sentences."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import discord

from bot.config import DiscordSettings
from bot.core.errors import ImagineError
from bot.core.jobs import Actor, ReplyTarget

log = logging.getLogger("bot.chat.discord")

PLATFORM = "discord"
TOKEN_LIFETIME_S = 15 * 60  # an interaction token works this long after the interaction
TOKEN_MARGIN_S = 30  # stop using a token this long before it runs out
UNEXPECTED = "Something went wrong on our side and nothing was charged; please try again."


def is_admin(interaction: discord.Interaction, settings: DiscordSettings) -> bool:
    """Manage Server in this guild, or a user or role id listed in [discord] config."""
    user = interaction.user
    if user.id in settings.admin_user_ids:
        return True
    if interaction.guild_id is None or not isinstance(user, discord.Member):
        return False
    if any(role.id in settings.admin_role_ids for role in user.roles):
        return True
    return interaction.permissions.manage_guild


def actor_for(interaction: discord.Interaction, settings: DiscordSettings) -> Actor:
    """The core's Actor for whoever caused this interaction (DMs: no workspace)."""
    user = interaction.user
    return Actor(
        platform=PLATFORM,
        user_id=str(user.id),
        workspace_id=str(interaction.guild_id) if interaction.guild_id else None,
        display_name=user.display_name,
        is_admin=is_admin(interaction, settings),
    )


def target_for(interaction: discord.Interaction, message_id: int | None = None,
               reply_to: int | None = None) -> ReplyTarget:
    """Where this interaction's job reports: its channel (or thread) and its token."""
    channel = interaction.channel
    channel_id = str(interaction.channel_id or "")
    thread_id = None
    if isinstance(channel, discord.Thread):
        thread_id = str(channel.id)
        channel_id = str(channel.parent_id)
    return ReplyTarget(
        platform=PLATFORM,
        channel_id=channel_id,
        workspace_id=str(interaction.guild_id) if interaction.guild_id else None,
        thread_id=thread_id,
        message_id=str(message_id) if message_id else None,
        reply_to_message_id=str(reply_to) if reply_to else None,
        interaction_token=interaction.token,
        interaction_expires_at=time.time() + TOKEN_LIFETIME_S,  # local clock: no skew
        application_id=str(interaction.application_id),
        extra={"filesize_limit": str(interaction.filesize_limit)},
    )


def token_valid(target: ReplyTarget, now: float | None = None) -> bool:
    """Whether the interaction token can still be used (with a safety margin)."""
    if not target.interaction_token or target.interaction_expires_at is None:
        return False
    return (now or time.time()) < target.interaction_expires_at - TOKEN_MARGIN_S


def nsfw_allowed(interaction: discord.Interaction) -> bool:
    """Age-restricted channels (and threads in them) allow the policy's NSFW terms."""
    channel = interaction.channel
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def only_user(user_id: str | int | None) -> discord.AllowedMentions:
    """Mentions that ping this user and nobody else (no @everyone, roles or replies)."""
    users = [discord.Object(int(user_id))] if user_id else []
    return discord.AllowedMentions(everyone=False, roles=False, users=users, replied_user=False)


async def tell(interaction: discord.Interaction, sentence: str) -> None:
    """One ephemeral sentence; a public 'thinking' response left by a deferral is removed."""
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(
                sentence, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
            return
        await interaction.followup.send(sentence, ephemeral=True,
                                        allowed_mentions=discord.AllowedMentions.none())
        if interaction.response.type is discord.InteractionResponseType.deferred_channel_message:
            await interaction.delete_original_response()
    except discord.HTTPException as error:
        log.warning("could not tell the user about an error (HTTP %s)", error.status)
    except Exception as error:  # a closed client at shutdown, say: never raise from here
        log.warning("could not tell the user about an error (%s)", type(error).__name__)


async def guarded(interaction: discord.Interaction, what: str,
                  action: Callable[[], Awaitable[None]]) -> None:
    """Run a handler: ImagineError -> its sentence; anything else -> the log and a plain line."""
    try:
        await action()
    except ImagineError as error:
        await tell(interaction, error.sentence())
    except Exception:
        log.exception("discord %s failed", what)
        await tell(interaction, UNEXPECTED)
