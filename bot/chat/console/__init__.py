"""The console chat: a terminal REPL that behaves like /imagine in a chat channel."""

from bot.chat.console.repl import ConsoleChat, run_console

__all__ = ["ConsoleChat", "run_console"]
