"""Discord -> core: who asked (Actor), where to answer (ReplyTarget), who may be pinged."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import discord

from bot.config import DiscordSettings
from bot.core.jobs import Actor, ReplyTarget

PLATFORM = "discord"
TOKEN_LIFETIME_S = 15 * 60  # an interaction token works this long after the interaction
TOKEN_MARGIN_S = 30  # stop using a token this long before it runs out


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


@dataclass(frozen=True)
class InteractionState:
    """What Discord needs beside the channel to answer a job: the interaction that asked.

    Kept in ReplyTarget.adapter_state as JSON, so that after a restart the result still goes
    out through the interaction while its token lasts."""

    token: str | None = None
    expires_at: float | None = None  # unix seconds, by the local clock
    application_id: str | None = None
    filesize_limit: int = discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES
    private: bool = False  # /settings visibility "only to me": ephemeral result, else a DM

    def to_text(self) -> str:
        """The JSON text stored in ReplyTarget.adapter_state."""
        return json.dumps({"interaction_token": self.token,
                           "interaction_expires_at": self.expires_at,
                           "application_id": self.application_id,
                           "filesize_limit": self.filesize_limit,
                           "private": self.private})

    @classmethod
    def of(cls, target: ReplyTarget) -> InteractionState:
        """The state a target carries (an empty one for targets made elsewhere)."""
        if not target.adapter_state:
            return cls()
        stored = json.loads(target.adapter_state)
        return cls(token=stored.get("interaction_token"),
                   expires_at=stored.get("interaction_expires_at"),
                   application_id=stored.get("application_id"),
                   filesize_limit=int(stored.get("filesize_limit")
                                      or discord.utils.DEFAULT_FILE_SIZE_LIMIT_BYTES),
                   private=bool(stored.get("private")))

    def token_valid(self, now: float | None = None) -> bool:
        """Whether the interaction token can still be used (with a safety margin)."""
        if not self.token or self.expires_at is None:
            return False
        return (now or time.time()) < self.expires_at - TOKEN_MARGIN_S


def target_for(interaction: discord.Interaction, message_id: int | None = None,
               reply_to: int | None = None, *, private: bool = False) -> ReplyTarget:
    """Where this interaction's job reports: its channel (or thread) and its token."""
    channel = interaction.channel
    channel_id = str(interaction.channel_id or "")
    thread_id = None
    if isinstance(channel, discord.Thread):
        thread_id = str(channel.id)
        channel_id = str(channel.parent_id)
    state = InteractionState(
        token=interaction.token,
        expires_at=time.time() + TOKEN_LIFETIME_S,  # local clock: no skew
        application_id=str(interaction.application_id),
        filesize_limit=interaction.filesize_limit,
        private=private,
    )
    return ReplyTarget(
        platform=PLATFORM,
        channel_id=channel_id,
        workspace_id=str(interaction.guild_id) if interaction.guild_id else None,
        thread_id=thread_id,
        message_id=str(message_id) if message_id else None,
        reply_to_message_id=str(reply_to) if reply_to else None,
        adapter_state=state.to_text(),
    )


def token_valid(target: ReplyTarget, now: float | None = None) -> bool:
    """Whether the target's interaction token can still be used (with a safety margin)."""
    return InteractionState.of(target).token_valid(now)


def nsfw_allowed(interaction: discord.Interaction) -> bool:
    """Age-restricted channels (and threads in them) allow the policy's NSFW terms."""
    channel = interaction.channel
    is_nsfw = getattr(channel, "is_nsfw", None)
    return bool(is_nsfw()) if callable(is_nsfw) else False


def only_user(user_id: str | int | None) -> discord.AllowedMentions:
    """Mentions that ping this user and nobody else (no @everyone, roles or replies)."""
    users = [discord.Object(int(user_id))] if user_id else []
    return discord.AllowedMentions(everyone=False, roles=False, users=users, replied_user=False)
