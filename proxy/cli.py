"""`rerank-proxy [migrate] --config PATH [--host --port --num_workers --detailed_debug --check]`."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from .config_loading import Settings, load_settings
from .settings import ConfigError

REQUEST_DRAIN_SECONDS = 30
"""On SIGTERM, in-flight requests get this long; then spend rows and callback events are drained (lifespan)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rerank-proxy", description="A Cohere-compatible rerank gateway.")
    parser.add_argument("command", nargs="?", choices=["migrate"],
                        help="migrate: upgrade the database schema to this version's and exit (no server)")
    parser.add_argument("--config", "-c", help="YAML config (LiteLLM-style model_list); default: offline local/bm25")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 4000),
                        help="default: $PORT, else 4000")
    parser.add_argument("--num_workers", "--num-workers", type=int, default=1)
    parser.add_argument("--detailed_debug", "--detailed-debug", action="store_true", help="verbose logs")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    return parser.parse_args(argv)


def check_callbacks(settings: Settings) -> None:
    """Build the logging callbacks once (imports a user's class, reads webhook/otel settings) to report errors."""
    from .callbacks import build_callbacks

    config_dir = Path(settings.source).resolve().parent if settings.source else None
    build_callbacks(settings.config.litellm_settings, settings.environ, config_dir=config_dir)


def migrate_database(settings: Settings) -> int:
    """`rerank-proxy migrate`: what every replica otherwise does at start, once, for a deploy step or Job."""
    from sqlalchemy.exc import SQLAlchemyError

    from .spend.db import check_schema, database_url, make_engine, migrate

    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        revision = check_schema(engine)
    except (SQLAlchemyError, OSError) as exc:
        print(f"rerank-proxy migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    print(f"database {database_url(settings.database_url).render_as_string(hide_password=True)} "
          f"is at schema revision {revision}")
    return 0


def schema_behind(settings: Settings) -> str | None:
    """With `disable_schema_update` the schema must already be migrated: say so before serving, not in a
    worker's traceback. An unreachable database is left to the server's own start."""
    from sqlalchemy.exc import SQLAlchemyError

    from .spend.db import SchemaBehindError, check_schema, make_engine

    engine = make_engine(settings.database_url)
    try:
        check_schema(engine)
    except SchemaBehindError as exc:
        return str(exc)
    except (SQLAlchemyError, OSError):
        return None
    finally:
        engine.dispose()
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    environ = dict(os.environ)
    try:
        settings = load_settings(args.config, environ)
        if args.check:
            check_callbacks(settings)
    except ConfigError as exc:
        print(f"rerank-proxy: {exc}", file=sys.stderr)
        return 2
    if args.command == "migrate":
        return migrate_database(settings)
    if args.check:
        for name in settings.missing_env:
            print(f"warning: environment variable {name} is not set", file=sys.stderr)
        print(f"config OK: {len(settings.aliases)} model alias(es): {', '.join(settings.aliases)}")
        return 0

    if settings.general.disable_schema_update and (problem := schema_behind(settings)):
        print(f"rerank-proxy: {problem}", file=sys.stderr)
        return 2

    import uvicorn

    from .app import CONFIG_ENV, DEBUG_ENV, STATUS_ENV
    from .connections import raise_fd_limit
    from .observability import configure_logging
    from .observability.metrics import MULTIPROC_ENV
    from .workers import run_workers

    debug = args.detailed_debug or bool(settings.config.litellm_settings.set_verbose)
    configure_logging(debug=debug, json_logs=bool(settings.config.litellm_settings.json_logs))
    os.environ[DEBUG_ENV] = "1" if debug else "0"

    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    else:
        os.environ.pop(CONFIG_ENV, None)
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"rerank-proxy listening on http://{args.host}:{args.port} (try http://{shown_host}:{args.port}/docs)",
          flush=True)
    print(f"serving models: {', '.join(settings.aliases) or '(none)'}", flush=True)
    before, after = raise_fd_limit()
    if after > before:
        print(f"file descriptors: soft limit raised from {before} to {after}", flush=True)
    if settings.master_key is None:
        print("warning: no general_settings.master_key set: every request is allowed", flush=True)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with these no-op handlers in place that
    # re-raise returns here instead of killing the process, so a drained shutdown exits 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    # Several workers share metrics through prometheus-client's multiprocess files, in a directory we own.
    metrics_dir = None
    if args.num_workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = tempfile.mkdtemp(prefix="rerank-proxy-metrics-")
        os.environ[MULTIPROC_ENV] = metrics_dir
    if os.environ.get(MULTIPROC_ENV):
        print(f"metrics: {args.num_workers} worker(s) aggregated through {os.environ[MULTIPROC_ENV]}", flush=True)
    options = dict(
        factory=True,
        host=args.host,
        port=args.port,
        log_level="debug" if debug else "warning",
        log_config=None,  # uvicorn's loggers go through ours (configure_logging): same format, json_logs
        access_log=False,  # our own request log never carries query strings or keys
        timeout_graceful_shutdown=REQUEST_DRAIN_SECONDS,
        http="proxy.connections:GuardedHttpToolsProtocol",  # request-head/body deadlines, connection cap
    )
    status_dir = Path(tempfile.mkdtemp(prefix="rerank-proxy-status-"))
    os.environ[STATUS_ENV] = str(status_dir)
    try:
        if args.num_workers > 1:
            run_workers("proxy.app:app_from_environment", args.num_workers, **options)
        else:
            uvicorn.run("proxy.app:app_from_environment", **options)
        lost = sum(int(report.read_text() or 0) for report in status_dir.glob("*.lost"))
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
        shutil.rmtree(status_dir, ignore_errors=True)
    if lost:
        print(f"rerank-proxy: ERROR: {lost} spend rows were lost (database and spill file unavailable or full)",
              file=sys.stderr, flush=True)
        return 1
    return 0
