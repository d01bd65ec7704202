"""Every key the config model accepts does something: it is proven by a named test, refused with its YAML path
(`proxy/refusals.py`), or explicitly owned by work still in progress. A key added to the model without a
place here fails `test_every_accepted_key_is_proven_refused_or_owned_elsewhere`.

Provider options (`litellm_params` keys a provider reads) are proven here directly: setting one changes the
upstream request the provider builds (URL, body, headers or signer).
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from proxy.deployments import resolve_deployment
from proxy.providers import REGISTRY
from proxy.refusals import GUARDRAIL_KEYS, MODEL_INFO, NOT_YET, PARAMS, SETTINGS
from proxy.request import make_request
from proxy.settings import DEPLOYMENT_PARAMS, ConfigError, ConfigFile, parse_config

TESTS = Path(__file__).parent

# key path → the test that shows its effect ("file::function").
PROVEN: dict[str, str] = {
    "model_list": "test_router_server.py::test_headers_name_the_deployment_that_answered",
    "model_list[].model_name": "test_router_server.py::test_headers_name_the_deployment_that_answered",
    "model_list[].litellm_params": "test_contract.py::test_happy_path_sends_the_exact_upstream_request",
    "model_list[].model_info": "test_cli.py::test_check_reports_repeated_deployment_ids_and_bad_model_group_aliases",
    "guardrails": "test_guardrails.py::test_default_pii_guardrail_masks_the_query_and_never_the_documents",
    "guardrails[].guardrail_name": "test_guardrails.py::test_chain_selection_and_order",
    "guardrails[].litellm_params": "test_guardrails.py::test_bad_guardrail_config_is_refused_with_its_path",
    "environment_variables": "test_config_effects.py::"
                             "test_environment_variables_feed_os_environ_references_and_the_real_environment_wins",
    "general_settings": "test_server.py::test_missing_or_bad_keys_are_401",
    "general_settings.master_key": "test_server.py::test_missing_or_bad_keys_are_401",
    "general_settings.database_url": "test_config_effects.py::test_disable_spend_logs_writes_no_spend_rows",
    "general_settings.max_request_size_mb": "test_request_log.py::"
        "test_one_line_per_request_with_the_call_and_nothing_secret",
    "general_settings.max_documents": "test_config_effects.py::test_max_documents_refuses_larger_requests",
    "general_settings.max_budget": "test_limits.py::test_proxy_wide_budget",
    "general_settings.budget_duration": "test_limits.py::test_budget_resets_after_its_duration_on_each_database",
    "general_settings.max_end_user_budget": "test_limits.py::test_end_user_budget_and_the_default_end_user_budget",
    "general_settings.key_cache_ttl": "test_config_effects.py::"
                                      "test_key_cache_ttl_is_how_long_another_replica_trusts_a_key_it_looked_up",
    "general_settings.spend_flush_interval": "test_shutdown.py::"
                                             "test_sigterm_under_load_delivers_every_event_and_writes_every_row",
    "general_settings.spend_spill_path": "test_durability.py::"
                                         "test_spend_that_cannot_be_written_at_shutdown_has_a_spill_file_by_default",
    "general_settings.disable_spend_logs": "test_config_effects.py::test_disable_spend_logs_writes_no_spend_rows",
    "general_settings.background_health_checks": "test_router_server.py::"
        "test_background_health_checks_cool_a_failing_deployment_and_notice_it_recover",
    "general_settings.health_check_interval": "test_router_server.py::"
        "test_background_health_checks_cool_a_failing_deployment_and_notice_it_recover",
    "general_settings.metrics_require_auth": "test_metrics.py::test_metrics_can_require_the_master_key",
    "general_settings.metrics_token": "test_metrics.py::test_metrics_accept_a_separate_scraper_token",
    "general_settings.metrics_end_user_series": "test_metrics.py::test_end_user_series_are_capped_and_their_values_cut",
    "general_settings.max_request_body_memory_mb": "test_hostile_clients.py::"
        "test_large_bodies_in_flight_share_a_memory_budget",
    "general_settings.request_header_timeout": "test_hostile_clients.py::"
        "test_silent_and_trickling_connections_are_cut_and_never_stop_a_normal_client",
    "general_settings.request_body_timeout": "test_hostile_clients.py::"
        "test_silent_and_trickling_connections_are_cut_and_never_stop_a_normal_client",
    "general_settings.max_connections": "test_hostile_clients.py::"
        "test_connections_past_the_cap_are_refused_with_503_and_retry_after",
    "general_settings.database_connection_pool_limit": "test_database_pool.py::"
        "test_the_pool_limit_caps_the_connections_of_a_busy_process",
    "general_settings.disable_schema_update": "test_migrate_command.py::"
        "test_a_replica_that_may_not_migrate_refuses_an_empty_database_and_names_the_fix",
    "general_settings.proxy_budget_rescheduler_min_time": "test_limits.py::"
                                                          "test_budget_resets_after_its_duration_on_each_database",
    "general_settings.proxy_budget_rescheduler_max_time": "test_limits.py::"
                                                          "test_budget_resets_after_its_duration_on_each_database",
    "general_settings.redis_key_prefix": "test_limits.py::test_two_replicas_share_the_rpm_limit",
    "general_settings.store_model_in_db": "test_live_models.py::"
        "test_stored_models_survive_a_restart_and_update_and_delete_change_them",
    "general_settings.model_sync_interval": "test_live_models.py::"
        "test_a_change_on_one_replica_reaches_another_and_deleting_under_load_fails_nothing",
    "general_settings.upstream_max_connections": "test_upstream_contract.py::"
        "test_a_hung_host_only_queues_its_own_calls",
    "general_settings.upstream_max_connections_per_host": "test_upstream_contract.py::"
        "test_a_hung_host_only_queues_its_own_calls",
    "general_settings.upstream_max_header_kb": "test_upstream_contract.py::"
        "test_the_header_limit_is_the_configured_size",
    "general_settings.upstream_max_response_mb": "test_upstream_contract.py::"
        "test_the_body_limit_is_the_configured_base_plus_a_share_per_document",
    "general_settings.upstream_response_kb_per_document": "test_upstream_contract.py::"
        "test_the_body_limit_is_the_configured_base_plus_a_share_per_document",
    "router_settings": "test_router_server.py::test_num_retries_from_router_settings_else_litellm_settings",
    "router_settings.routing_strategy": "test_router.py::"
                                        "test_least_busy_sends_each_call_to_the_deployment_with_fewest_in_flight",
    "router_settings.num_retries": "test_router_server.py::test_num_retries_from_router_settings_else_litellm_settings",
    "router_settings.timeout": "test_router.py::test_the_overall_timeout_bounds_every_attempt_and_answers_504",
    "router_settings.retry_after": "test_routing_parts.py::"
        "test_backoff_doubles_with_jitter_is_capped_and_honours_retry_after_up_to_the_cap",
    "router_settings.max_retry_after": "test_routing_parts.py::"
        "test_backoff_doubles_with_jitter_is_capped_and_honours_retry_after_up_to_the_cap",
    "router_settings.fallbacks": "test_router.py::test_fallback_chain_request_then_config_then_default",
    "router_settings.default_fallbacks": "test_router.py::test_fallback_chain_request_then_config_then_default",
    "router_settings.allowed_fails": "test_routing_parts.py::test_cooldown_after_allowed_fails_within_a_minute",
    "router_settings.cooldown_time": "test_routing_parts.py::test_cooldown_after_allowed_fails_within_a_minute",
    "router_settings.max_cooldown_time": "test_routing_parts.py::"
        "test_rate_limits_and_refused_credentials_cool_at_once_and_retry_after_lengthens_the_cooldown",
    "router_settings.redis_url": "test_router_redis.py::test_two_proxy_processes_enforce_one_rpm_jointly",
    "router_settings.redis_prefix": "test_router_redis.py::test_two_proxy_processes_enforce_one_rpm_jointly",
    "router_settings.redis_refresh_interval": "test_router_redis.py::"
                                              "test_replicas_count_failures_together_and_see_each_others_cooldowns",
    "router_settings.redis_host": "test_config_effects.py::test_redis_host_port_and_password_make_the_redis_url",
    "router_settings.redis_port": "test_config_effects.py::test_redis_host_port_and_password_make_the_redis_url",
    "router_settings.redis_password": "test_config_effects.py::test_redis_host_port_and_password_make_the_redis_url",
    "router_settings.enable_pre_call_checks": "test_router.py::test_pre_call_checks_enforce_rpm_with_any_strategy",
    "router_settings.enable_tag_filtering": "test_tag_routing.py::"
        "test_body_and_header_tags_reach_only_the_matching_deployments",
    "router_settings.tag_filtering_match_any": "test_tag_routing.py::"
        "test_a_config_reload_turns_tag_filtering_on_and_off_and_sets_match_all",
    "router_settings.model_group_alias": "test_router.py::"
                                         "test_a_model_group_alias_is_its_alias_same_deployments_state_and_fallbacks",
    "router_settings.routing_strategy_args": "test_routing_parts.py::"
        "test_lowest_latency_prefers_fast_explores_and_measures_the_unmeasured_first",
    "router_settings.seed": "test_router.py::test_a_seeded_router_routes_the_same_way_every_time",
    "litellm_settings": "test_callbacks.py::test_webhook_receives_batched_events_with_the_log_fields",
    "litellm_settings.callbacks": "test_callbacks.py::test_webhook_receives_batched_events_with_the_log_fields",
    "litellm_settings.success_callback": "test_callbacks.py::test_import_path_callbacks_get_success_and_failure_events",
    "litellm_settings.failure_callback": "test_callbacks.py::test_import_path_callbacks_get_success_and_failure_events",
    "litellm_settings.callback_settings": "test_callbacks.py::test_webhook_receives_batched_events_with_the_log_fields",
    "litellm_settings.num_retries": "test_router_server.py::"
        "test_num_retries_from_router_settings_else_litellm_settings",
    "litellm_settings.request_timeout": "test_config_effects.py::"
                                        "test_request_timeout_is_the_timeout_of_deployments_that_set_none",
    "litellm_settings.fallbacks": "test_config_effects.py::"
        "test_litellm_settings_spellings_of_fallbacks_and_budgets_apply_when_the_other_section_is_silent",
    "litellm_settings.default_fallbacks": "test_config_effects.py::"
        "test_litellm_settings_spellings_of_fallbacks_and_budgets_apply_when_the_other_section_is_silent",
    "litellm_settings.set_verbose": "test_config_effects.py::test_set_verbose_turns_on_debug_logs_like_detailed_debug",
    "litellm_settings.json_logs": "test_request_log.py::"
                                  "test_the_cli_logs_json_lines_to_stderr_with_no_secret_even_in_debug",
    "litellm_settings.max_budget": "test_config_effects.py::"
        "test_litellm_settings_spellings_of_fallbacks_and_budgets_apply_when_the_other_section_is_silent",
    "litellm_settings.budget_duration": "test_config_effects.py::"
        "test_litellm_settings_spellings_of_fallbacks_and_budgets_apply_when_the_other_section_is_silent",
    "litellm_settings.max_end_user_budget": "test_config_effects.py::"
        "test_litellm_settings_spellings_of_fallbacks_and_budgets_apply_when_the_other_section_is_silent",
    "litellm_settings.require_auth_for_metrics_endpoint": "test_metrics.py::"
        "test_litellm_metrics_auth_setting_is_accepted",
    "litellm_settings.disable_end_user_cost_tracking_prometheus_only": "test_metrics.py::"
        "test_end_user_labels_can_be_left_empty_as_litellm_allows",
    "litellm_settings.ssl_verify": "test_upstream_contract.py::"
        "test_tls_upstreams_are_verified_against_the_configured_ca_bundle",
    "litellm_settings.cache": "test_result_cache.py::test_an_identical_request_is_answered_without_an_upstream_call",
    "litellm_settings.cache_params": "test_result_cache.py::"
        "test_an_identical_request_is_answered_without_an_upstream_call",
    "litellm_settings.cache_params.type": "test_result_cache_parts.py::"
        "test_the_cache_type_follows_the_servers_redis_when_not_given",
    "litellm_settings.cache_params.url": "test_result_cache_redis.py::test_two_replicas_share_answers_and_scores",
    "litellm_settings.cache_params.ttl": "test_result_cache_redis.py::"
        "test_entries_expire_after_the_configured_or_requested_ttl",
    "litellm_settings.cache_params.namespace": "test_result_cache_parts.py::test_scope_and_namespace_separate_entries",
    "litellm_settings.cache_params.scope": "test_result_cache.py::test_per_key_scope_keeps_each_keys_entries_apart",
    "litellm_settings.cache_params.max_size_mb": "test_result_cache_parts.py::"
        "test_the_local_store_is_bounded_in_bytes_and_evicts_the_least_recently_used",
    "litellm_settings.cache_params.timeout": "test_result_cache_redis.py::"
        "test_redis_killed_mid_traffic_fails_no_request",
    "litellm_settings.cache_params.answers": "test_result_cache.py::"
        "test_an_identical_request_is_answered_without_an_upstream_call",
    "litellm_settings.cache_params.scores": "test_result_cache.py::"
        "test_an_overlapping_request_sends_only_the_unseen_documents",
    "litellm_params.cache_scores": "test_result_cache.py::test_a_deployment_can_opt_out_of_score_reuse",
    # deployment keys every provider takes (`model_list[].litellm_params.<key>`)
    "litellm_params.model": "test_contract.py::test_happy_path_sends_the_exact_upstream_request",
    "litellm_params.api_key": "test_server.py::test_cohere_v1_client_with_a_virtual_key",
    "litellm_params.api_base": "test_contract.py::test_happy_path_sends_the_exact_upstream_request",
    "litellm_params.timeout": "test_router.py::test_an_upstream_timeout_is_retried",
    "litellm_params.rpm": "test_router.py::test_usage_based_keeps_each_deployment_under_its_rpm",
    "general_settings.maximum_spend_logs_retention_period": "test_retention.py::"
                                                            "test_the_server_sweeps_at_start_with_maximum_spend_logs_retention_period",
    "general_settings.maximum_spend_logs_retention_interval": "test_retention.py::"
                                                              "test_the_server_sweeps_at_start_with_maximum_spend_logs_retention_period",
    "litellm_params.tags": "test_tags_reports.py::"
                           "test_tags_flow_from_body_header_key_team_and_deployment_to_the_spend_row_and_spend_tags",
    "litellm_params.tpm": "test_router.py::test_a_deployment_over_its_tpm_is_skipped_counting_reported_tokens",
    "litellm_params.weight": "test_router.py::test_simple_shuffle_spreads_calls_by_weight",
    "litellm_params.order": "test_router.py::test_order_tiers_are_used_only_when_every_lower_order_is_unavailable",
    "litellm_params.headers": "test_config_effects.py::test_headers_and_extra_headers_reach_the_upstream",
    "litellm_params.extra_headers": "test_config_effects.py::test_headers_and_extra_headers_reach_the_upstream",
    "litellm_params.input_cost_per_query": "test_core.py::test_deployment_prices_override_the_table",
    "general_settings.allow_requests_on_db_unavailable": "test_db_outage_server.py::"
        "test_allow_requests_on_db_unavailable_lets_unverifiable_keys_through_restricted",
    "general_settings.proxy_batch_write_at": "test_db_outage_server.py::"
        "test_proxy_batch_write_at_is_the_spend_flush_interval",
    "general_settings.database_read_timeout": "test_db_outage_server.py::"
        "test_a_hung_database_costs_known_keys_no_wait_and_unknown_keys_a_fast_503",
    "general_settings.key_cache_max_stale": "test_db_outage_reads.py::test_staleness_is_bounded",
    "general_settings.spend_spill_max_mb": "test_spend_writer.py::"
        "test_a_full_journal_keeps_events_in_memory_then_drops_and_counts_them",
    "litellm_params.input_cost_per_token": "test_core.py::test_deployment_prices_override_the_table",
    "litellm_params.max_retries": "test_router.py::"
        "test_max_retries_caps_how_often_one_deployment_is_tried_again",
    "litellm_params.custom_llm_provider": "test_config_effects.py::"
        "test_custom_llm_provider_names_the_provider_of_a_model_without_prefix",
    "litellm_params.max_parallel_requests": "test_router.py::"
        "test_max_parallel_requests_lets_n_of_n_plus_one_concurrent_calls_reach_the_upstream",
}

# Keys whose behaviour another piece of work in progress delivers: listed, so they are not forgotten.
OWNED_ELSEWHERE: dict[str, str] = {
    "litellm_settings.cache_params.host": "issue 20 (result cache): Redis as host/port/password, no test of its own",
    "litellm_settings.cache_params.port": "issue 20 (result cache)",
    "litellm_settings.cache_params.password": "issue 20 (result cache)",
    "litellm_settings.cache_params.supported_call_types": "issue 20 (result cache): only `rerank` is cached",
}


def _paths(model: type[BaseModel], prefix: str) -> list[str]:
    """Every key path the config model accepts, nested models included (lists as `[]`)."""
    paths = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        paths.append(path)
        annotation = info.annotation
        listed = typing.get_origin(annotation) is list
        for kind in typing.get_args(annotation) or (annotation,):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                paths += _paths(kind, f"{path}{'[]' if listed else ''}.")
    return paths


def _accepted() -> list[str]:
    return _paths(ConfigFile, "") + [f"litellm_params.{key}" for key in sorted(DEPLOYMENT_PARAMS)]


def _test_names() -> set[str]:
    names = set()
    for path in TESTS.glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                names.add(f"{path.name}::{node.name}")
    return names


def _refused_path(path: str) -> bool:
    return (path in SETTINGS or path.removeprefix("litellm_params.") in PARAMS
            or path.removeprefix("guardrails[].") in GUARDRAIL_KEYS)


def test_every_accepted_key_is_proven_refused_or_owned_elsewhere():
    unaccounted = [p for p in _accepted() if p not in PROVEN and p not in OWNED_ELSEWHERE and not _refused_path(p)]
    assert unaccounted == [], "prove these keys (PROVEN), refuse them (proxy/refusals.py) or list their owner"
    assert not PROVEN.keys() & OWNED_ELSEWHERE.keys()
    stale = [p for p in [*PROVEN, *OWNED_ELSEWHERE] if p not in _accepted()]
    assert stale == [], "keys no longer in the config model"


def test_every_proving_test_exists():
    names = _test_names()
    assert sorted({t for t in PROVEN.values() if t not in names}) == []


REFUSED_SAMPLES: dict[str, Any] = {"alerting": ["slack"], "store_prompts_in_spend_logs": True,
                                   "drop_params": False, "telemetry": True,
                                   "vertex_location": "us-central1"}


@pytest.mark.parametrize("path", sorted(SETTINGS))
def test_each_refused_setting_is_refused_with_its_path_and_why(path):
    section, key = path.split(".")
    with pytest.raises(ConfigError) as caught:
        parse_config({section: {key: REFUSED_SAMPLES.get(key, "x")}}, {})
    assert caught.value.problems == [f"{path}: {SETTINGS[path].reason}"]
    for allowed in SETTINGS[path].allowed:  # the values that describe what the proxy does anyway
        if allowed is not None:
            parse_config({section: {key: allowed}}, {})


@pytest.mark.parametrize("key", sorted(PARAMS))
def test_each_refused_deployment_key_is_refused_with_its_path_and_why(key):
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "local/bm25"}},
                             {"model_name": "m", "litellm_params": {"model": "local/bm25",
                                                                    key: REFUSED_SAMPLES.get(key, "x")}}]}
    with pytest.raises(ConfigError) as caught:
        parse_config(config, {})
    assert caught.value.problems == [f"model_list[1].litellm_params.{key}: {PARAMS[key].reason}"]


@pytest.mark.parametrize("key", sorted(MODEL_INFO))
def test_each_refused_model_info_key_is_refused_with_its_path_and_why(key):
    config = {"model_list": [{"model_name": "m", "litellm_params": {"model": "local/bm25"},
                              "model_info": {"id": "a", key: False}},
                             {"model_name": "m", "litellm_params": {"model": "local/bm25"},
                              "model_info": {"id": "b", key: True}}]}
    if MODEL_INFO[key].refuses(False):
        with pytest.raises(ConfigError) as caught:
            parse_config(config, {})
        assert f"model_list[0].model_info.{key}: {MODEL_INFO[key].reason}" in caught.value.problems
    config["model_list"].pop(0)
    with pytest.raises(ConfigError) as caught:
        parse_config(config, {})
    assert caught.value.problems == [f"model_list[0].model_info.{key}: {MODEL_INFO[key].reason}"]


def test_guardrail_info_is_refused_with_its_path():
    entry = {"guardrail_name": "g", "litellm_params": {"guardrail": "max_length", "max_chars": 10},
             "guardrail_info": {"description": "short queries"}}
    with pytest.raises(ConfigError) as caught:
        parse_config({"guardrails": [entry]}, {})
    assert caught.value.problems == [f"guardrails[0].guardrail_info: {GUARDRAIL_KEYS['guardrail_info'].reason}"]


def test_features_not_yet_served_are_refused_in_one_place():
    assert set(NOT_YET) == set()


def test_a_key_of_another_provider_is_refused_naming_its_provider():
    with pytest.raises(ConfigError, match=r"model_list\[0\]\.litellm_params: 'aws_region_name' is an option of "
                                          r"bedrock, not of provider 'cohere'"):
        parse_config({"model_list": [{"model_name": "m", "litellm_params": {"model": "cohere/x",
                                                                            "aws_region_name": "eu-west-1"}}]}, {})


# -- provider options: each one changes the request its provider builds -------------------------------------

BASE: dict[str, dict[str, Any]] = {
    "bedrock": {"aws_region_name": "us-east-1", "aws_access_key_id": "AKID", "aws_secret_access_key": "s"},
    "vertex_ai": {"vertex_project": "p", "vertex_credentials": '{"type": "authorized_user", "client_id": "c", '
                                                               '"client_secret": "s", "refresh_token": "r"}'},
}
SAMPLES: dict[str, Any] = {
    "aws_region_name": "eu-west-1", "aws_access_key_id": "AKID2", "aws_secret_access_key": "s2",
    "aws_session_token": "t", "aws_profile_name": "other", "aws_role_name": "arn:aws:iam::1:role/r",
    "aws_bedrock_runtime_endpoint": "https://bedrock-runtime.example.com", "vertex_project": "p2",
    "vertex_credentials": '{"type": "authorized_user", "client_id": "c2", "client_secret": "s", '
                          '"refresh_token": "r"}',
    "instruction": "Rank for support questions", "service_tier": "priority", "truncate": "END",
    "truncation_direction": "Left", "task": "rank", "truncate_prompt_tokens": 64, "truncation_side": "left",
    "max_tokens_per_query": 32, "priority": 3, "raw_scores": True, "truncation": False,
}
# Options that only act together with another one (proven against a base that has it).
NEEDS = {"aws_session_name": {"aws_role_name": "arn:aws:iam::1:role/r"},
         "aws_web_identity_token": {"aws_role_name": "arn:aws:iam::1:role/r"},
         "aws_sts_endpoint": {"aws_role_name": "arn:aws:iam::1:role/r"}}
SAMPLES.update({"aws_session_name": "batch", "aws_web_identity_token": "oidc", "aws_sts_endpoint": "http://sts.test"})


def _options() -> list[tuple[str, str]]:
    providers = {p.name: p for p in REGISTRY.values()}
    return sorted((name, key) for name, p in providers.items() for key in {*p.options, *p.param_env})


def _built(provider: str, params: dict[str, Any]) -> tuple[Any, ...]:
    deployment = resolve_deployment(f"{provider}/m", {"api_key": "k", "api_base": "http://up.test", **params},
                                    environ={})
    upstream = deployment.provider.build(make_request("q", ["a", "b"]), deployment)
    signer = getattr(upstream.auth, "_source", upstream.auth)  # the credentials a signer uses
    return upstream.url, upstream.json, upstream.headers, signer


@pytest.mark.parametrize(("provider", "key"), _options())
def test_each_provider_option_changes_the_request_it_builds(provider, key):
    pytest.importorskip("google.auth") if provider == "vertex_ai" else pytest.importorskip("botocore")
    base = {**BASE.get(provider, {}), **NEEDS.get(key, {})}
    if key == "aws_profile_name":  # keys win over a profile (LiteLLM's order): a profile acts without them
        base = {"aws_region_name": "us-east-1"}
    assert key in SAMPLES, f"add a sample value for {provider}'s option {key}"
    changed = {**base, key: SAMPLES[key]}
    if key == "aws_bedrock_runtime_endpoint":
        base = {**base, "api_base": None}
        changed = {**changed, "api_base": None}
    assert _built(provider, base) != _built(provider, changed)


def test_check_and_start_refuse_a_config_with_refused_keys_naming_each_path(tmp_path, capsys):
    from proxy.cli import main

    config = tmp_path / "config.yaml"
    config.write_text("model_list:\n  - model_name: m\n    litellm_params: {model: local/bm25, stream_timeout: 5}\n"
                      "general_settings: {alerting: [slack]}\n")
    for args in (["--check"], []):  # without --check the config is refused before anything starts
        assert main(["--config", str(config), *args]) == 2
        error = capsys.readouterr().err
        assert "model_list[0].litellm_params.stream_timeout: rerank answers are not streamed" in error
        assert "general_settings.alerting: alerts" in error
