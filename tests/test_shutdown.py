"""SIGTERM under load: the CLI stops accepting, finishes in-flight requests, drains the spend writer and the
callbacks, and exits 0 — every served request has its spend row and its webhook event."""

from __future__ import annotations

import signal

import sqlalchemy as sa

from tests.serving import MASTER_KEY, background_load, cli_process, wait_until
from tests.webhook_receiver import WebhookReceiver

BODY = {"model": "local-bm25", "query": "capital of the United States",
        "documents": ["Washington is the capital of the United States.", "Paris is in France."]}


def spend_ids(db_url: str) -> set[str]:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("select request_id from spend_logs")).scalars())
    finally:
        engine.dispose()


def test_sigterm_under_load_delivers_every_event_and_writes_every_row(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'spend.db'}"
    config = tmp_path / "config.yaml"
    with WebhookReceiver() as hook:
        # Long flush intervals: at SIGTERM most events and rows are still queued in memory.
        config.write_text(
            "model_list:\n  - model_name: local-bm25\n    litellm_params: {model: local/bm25}\n"
            f"general_settings: {{master_key: {MASTER_KEY}, database_url: '{db_url}', spend_flush_interval: 5}}\n"
            "litellm_settings:\n  callbacks: [webhook]\n"
            f"  callback_settings: {{webhook: {{url: '{hook.url}', batch_size: 1000, flush_interval: 30}}}}\n"
        )
        with cli_process(["--config", str(config)], cwd=tmp_path) as (proc, url), \
                background_load(url, BODY) as successes:
            wait_until(lambda: len(successes) >= 200, timeout=60)
            assert hook.events == []  # nothing flushed yet: the drain at shutdown must do it
            proc.send_signal(signal.SIGTERM)  # while the load goes on
            assert proc.wait(timeout=60) == 0
        delivered = [event["request_id"] for event in hook.events]
    assert successes
    assert len(delivered) == len(set(delivered))  # each event once
    rows = spend_ids(db_url)
    assert set(successes) <= rows
    assert set(delivered) == rows
