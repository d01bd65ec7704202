"""Budgets and limits above the key: its internal user, its team and its tags, each refusing with a 429 that
names it, on each database; shared by replicas through Redis as key limits are."""

from __future__ import annotations

import pytest

from tests.serving import admin, answered, wait_until
from tests.test_limits import burst, call, new_key
from tests.test_limits import replicas as replicas  # a module fixture: two proxies sharing Redis

PAID = "rerank-english-v3.0"  # $0.002 a call


def test_a_key_in_a_team_over_the_teams_budget_gets_a_429_naming_the_team(admin_server, admin_api):
    answered(admin_api.post("/team/new", json={"team_id": "budget-team", "max_budget": 0.004}))
    first, second = (new_key(admin_api, team_id="budget-team") for _ in range(2))
    assert [call(admin_server, first, PAID).status_code, call(admin_server, second, PAID).status_code] == [200, 200]
    refused = call(admin_server, first, PAID)
    assert refused.status_code == 429
    assert refused.json()["message"].startswith("Budget exceeded for team 'budget-team': spent $0.004 of max_budget")
    team = {"team_id": "budget-team"}
    wait_until(lambda: answered(admin_api.get("/team/info", params=team))["team_info"]["spend"] > 0)
    info = answered(admin_api.get("/team/info", params={"team_id": "budget-team"}))["team_info"]
    assert info["spend"] == pytest.approx(0.004) and info["remaining_budget"] == pytest.approx(0)
    answered(admin_api.post("/team/update", json={"team_id": "budget-team", "max_budget": 0.006}))
    assert call(admin_server, second, PAID).status_code == 200  # raised: applies at once


def test_a_teams_budget_holds_under_a_burst_of_its_keys(admin_server, admin_api):
    answered(admin_api.post("/team/new", json={"team_id": "burst-team", "max_budget": 0.01}))
    key = new_key(admin_api, team_id="burst-team")
    responses = burst([admin_server], key, 20, model=PAID)
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15


def test_a_teams_rpm_limit_is_shared_by_its_keys(admin_server, admin_api):
    answered(admin_api.post("/team/new", json={"team_id": "rpm-team", "rpm_limit": 3}))
    keys = [new_key(admin_api, team_id="rpm-team") for _ in range(2)]
    statuses = [call(admin_server, keys[i % 2], "local-bm25").status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert "team 'rpm-team': rpm_limit is 3" in call(admin_server, keys[0], "local-bm25").json()["message"]


def test_an_internal_users_budget_covers_every_key_they_own(admin_server, admin_api):
    answered(admin_api.post("/user/new", json={"user_id": "thrifty", "max_budget": 0.002, "auto_create_key": False}))
    keys = [new_key(admin_api, user_id="thrifty") for _ in range(2)]
    assert call(admin_server, keys[0], PAID).status_code == 200
    refused = call(admin_server, keys[1], PAID)
    assert refused.status_code == 429 and "user 'thrifty'" in refused.json()["message"]
    wait_until(lambda: answered(admin_api.get("/user/info", params={"user_id": "thrifty"}))["user_info"]["spend"] > 0)


def test_the_key_refuses_before_its_team_and_the_team_before_the_proxy(admin_server, admin_api):
    answered(admin_api.post("/team/new", json={"team_id": "roomy-team", "max_budget": 1}))
    key = new_key(admin_api, team_id="roomy-team", max_budget=0.002)
    assert call(admin_server, key, PAID).status_code == 200
    assert "key" in call(admin_server, key, PAID).json()["message"].split(":")[0]


# --- replicas sharing Redis ------------------------------------------------------------------------


@pytest.mark.redis
def test_two_replicas_share_a_teams_budget(replicas):
    with admin(replicas[0]) as client:
        answered(client.post("/team/new", json={"team_id": "shared-team", "max_budget": 0.01}))
        key = new_key(client, team_id="shared-team")
    responses = burst(replicas, key, 20, model=PAID)
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15
    assert "team 'shared-team'" in next(r for r in responses if r.status_code == 429).json()["message"]
