"""python -m bot == imagine-bot."""

from bot.cli import main

raise SystemExit(main())
