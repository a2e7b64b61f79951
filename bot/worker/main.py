"""`imagine-bot worker`: load the models once, then serve Segmind's contract over HTTP.

    imagine-bot worker --model flux-schnell=SOURCE [--model chroma=SOURCE] [--model kolors=SOURCE]
                       [--host 127.0.0.1] [--port 8188] [--cpu-offload] [--attention-slicing]
                       [--vae-tiling] [--compile]

Without --model, --host or --port, the config's [worker] models, host and port are used.

torch, diffusers and uvicorn are imported only inside run_worker, so `imagine-bot --help`
works without the worker extra. Every start-up problem is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import sys
from pathlib import Path

from bot.worker.sources import DEFAULT_SOURCES, SourceError, parse_model_options, resolve_source

API_KEY_ENV = "IMAGINE_WORKER_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8188


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """The options the worker and the fleet share: how pipelines load, and the key rule."""
    parser.add_argument("--cpu-offload", action="store_true",
                        help="keep idle parts of each pipeline in CPU memory (small GPUs)")
    parser.add_argument("--attention-slicing", action="store_true",
                        help="compute attention in slices (less memory, slower)")
    parser.add_argument("--vae-tiling", action="store_true",
                        help="decode large images tile by tile (less memory)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the denoisers, with a warm-up at start")
    parser.add_argument("--insecure-no-key", action="store_true",
                        help=f"listen beyond loopback without {API_KEY_ENV} (anyone can use it)")


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the worker's options to `parser` (used by `imagine-bot worker`)."""
    defaults = ", ".join(f"{m}={s}" for m, s in DEFAULT_SOURCES.items())
    parser.add_argument(
        "--model", action="append", default=[], metavar="MODEL[=SOURCE]",
        help="a model to serve, repeatable; SOURCE is a diffusers folder or a hub id "
             f"(defaults: {defaults})",
    )
    parser.add_argument("--host", default=None,
                        help=f"address to listen on (default: [worker] host, or {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to listen on (default: [worker] port, or {DEFAULT_PORT})")
    add_pipeline_arguments(parser)


def run_worker(args: argparse.Namespace) -> int:
    """Load the models and serve until stopped; returns the process exit code.

    Options left out come from the config's [worker] section (models, host, port) when the
    bot's config can be read, else from the defaults.
    """
    models = list(getattr(args, "model", None) or [])
    host, port = getattr(args, "host", None), getattr(args, "port", None)
    try:
        if not models or host is None or port is None:
            configured = _configured(getattr(args, "config", None))
            models = models or configured[0]
            host = host if host is not None else configured[1]
            port = port if port is not None else configured[2]
        chosen = parse_model_options(models)
        sources = {model: resolve_source(model, source) for model, source in chosen.items()}
    except SourceError as exc:
        return _fail(str(exc))
    host = host if host is not None else DEFAULT_HOST
    port = port if port is not None else DEFAULT_PORT
    api_key = os.environ.get(API_KEY_ENV) or None
    if api_key is None and not is_loopback(host) and not getattr(args, "insecure_no_key", False):
        return _fail(
            f"listening on {host} without {API_KEY_ENV} would let anyone on the network use "
            "the GPU; set it (clients send it as x-api-key) or pass --insecure-no-key"
        )
    try:
        import uvicorn

        from bot.worker.app import create_app
        from bot.worker.pipelines import Engine
        from bot.worker.sources import EngineOptions
    except ImportError as exc:
        return _fail(
            f"the worker needs the worker extra (pip install 'imagine-bot[worker]'): "
            f"{exc.name or exc} is missing"
        )
    configure_logging("bot.worker", "worker")
    options = EngineOptions(
        cpu_offload=getattr(args, "cpu_offload", False),
        attention_slicing=getattr(args, "attention_slicing", False),
        vae_tiling=getattr(args, "vae_tiling", False),
        compile=getattr(args, "compile", False),
    )
    try:
        engine = Engine.load(sources, options)
    except SourceError as exc:
        return _fail(str(exc))
    if options.compile:
        engine.warm_up()
    server = uvicorn.Server(uvicorn.Config(
        create_app(engine, api_key), host=host, port=port, log_level="info",
    ))
    try:
        server.run()
    except SystemExit:
        return _fail(f"could not listen on {host}:{port} (see the error above)", code=1)
    return 0


def _configured(path: Path | None) -> tuple[list[str], str | None, int | None]:
    """[worker] models (as MODEL=SOURCE), host and port from the bot's config, if readable."""
    try:
        from bot.config import ConfigError, Settings
    except ImportError:  # the bot's settings are not importable: command-line options only
        return [], None, None
    try:
        worker = Settings.load(path).worker
    except ConfigError as exc:
        raise SourceError(f"config: {exc}") from None
    models = [f"{model}={source}" if source else model for model, source in worker.models.items()]
    return models, worker.host, worker.port


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (no API key needed there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fail(program: str, line: str, code: int = 2) -> int:
    """Print `imagine-bot PROGRAM: LINE` on stderr and return the exit status `code`."""
    print(f"imagine-bot {program}: {line}", file=sys.stderr)
    return code


def configure_logging(logger_name: str, label: str) -> None:
    """Log a server's own lines (loading, warm-up, cancellations) to stderr at INFO."""
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(f"%(asctime)s {label}: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _fail(line: str, code: int = 2) -> int:
    return fail("worker", line, code)


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bot.worker.main", description="Serve image models over HTTP."
    )
    add_worker_arguments(parser)
    return run_worker(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_main())
