"""`rerank-proxy --config PATH [--host --port --num_workers --detailed_debug --check]`."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from .settings import ConfigError, load_settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="rerank-proxy", description="A Cohere-compatible rerank gateway.")
    parser.add_argument("--config", "-c", help="YAML config (LiteLLM-style model_list); default: offline local/bm25")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=4000)
    parser.add_argument("--num_workers", "--num-workers", type=int, default=1)
    parser.add_argument("--detailed_debug", "--detailed-debug", action="store_true", help="verbose logs")
    parser.add_argument("--check", action="store_true", help="validate the config and exit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.detailed_debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    environ = dict(os.environ)
    try:
        settings = load_settings(args.config, environ)
    except ConfigError as exc:
        print(f"rerank-proxy: {exc}", file=sys.stderr)
        return 2
    if args.check:
        for name in settings.missing_env:
            print(f"warning: environment variable {name} is not set", file=sys.stderr)
        print(f"config OK: {len(settings.aliases)} model alias(es): {', '.join(settings.aliases)}")
        return 0

    import uvicorn

    from .app import CONFIG_ENV

    if args.config:
        os.environ[CONFIG_ENV] = os.path.abspath(args.config)
    else:
        os.environ.pop(CONFIG_ENV, None)
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    print(f"rerank-proxy listening on http://{args.host}:{args.port} (try http://{shown_host}:{args.port}/docs)",
          flush=True)
    print(f"serving models: {', '.join(settings.aliases) or '(none)'}", flush=True)
    if settings.master_key is None:
        print("warning: no general_settings.master_key set: every request is allowed", flush=True)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with these no-op handlers in place that
    # re-raise returns here instead of killing the process, so a drained shutdown exits 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(
        "proxy.app:app_from_environment",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.num_workers if args.num_workers > 1 else None,
        log_level="debug" if args.detailed_debug else "warning",
        access_log=False,  # our own request log never carries query strings or keys
        timeout_graceful_shutdown=30,
    )
    return 0
