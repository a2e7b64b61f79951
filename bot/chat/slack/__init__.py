"""Slack front end: /imagine, @mentions, buttons and admin quota commands (slack-bolt AsyncApp)."""

from __future__ import annotations

from bot.chat.slack._adapter import SlackAdapter, run_slack

__all__ = ["SlackAdapter", "run_slack"]
