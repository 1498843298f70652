"""Users over both dialects: upsert, partial update, query, deactivate, reactivate, delete."""

from __future__ import annotations

import pytest
from getstream.base import StreamApiException
from getstream.models import QueryUsersPayload, UpdateUserPartialRequest, UserRequest
from stream_chat.base.exceptions import StreamAPIException

from stream_emulator import operations as op


def test_upsert_v2_nests_custom_fields_and_v1_flattens_them(gs, sc, emu):
    response = gs.upsert_users(UserRequest(id="ann", name="Ann", role="user", custom={"onecrew_kind": "user"}))
    assert response.status_code() == 201
    user = response.data.users["ann"]
    assert user.name == "Ann" and user.custom == {"onecrew_kind": "user"}
    assert user.created_at.year >= 2024  # decoded from integer nanoseconds

    v1 = sc.query_users({"id": "ann"})["users"][0]
    assert v1["onecrew_kind"] == "user" and "custom" not in v1
    assert v1["created_at"].endswith("Z") and "T" in v1["created_at"]
    assert emu.get_user("ann")["onecrew_kind"] == "user"


def test_upsert_is_a_full_replace_that_keeps_created_at(sc, emu):
    first = sc.upsert_user({"id": "bo", "name": "Bo", "color": "red"})["users"]["bo"]
    second = sc.upsert_user({"id": "bo", "team_size": 3})["users"]["bo"]
    assert "name" not in second and "color" not in second and second["team_size"] == 3
    assert second["created_at"] == first["created_at"]


def test_upsert_of_more_than_100_users_fails_whole(gs, emu):
    users = [UserRequest(id=f"u{i}") for i in range(101)]
    with pytest.raises(StreamApiException) as caught:
        gs.upsert_users(*users)
    assert caught.value.status_code == 400 and caught.value.code == 4
    assert caught.value.message.startswith('UpdateUsers failed with error: "users has 101 items')
    assert emu.user_ids() == set()


def test_one_invalid_id_fails_the_whole_batch(sc, emu):
    with pytest.raises(StreamAPIException) as caught:
        sc.upsert_users([{"id": "good"}, {"id": "bad id!"}])
    assert caught.value.status_code == 400 and caught.value.error_code == 4
    assert "bad id! is not a valid user id" in caught.value.error_message
    assert emu.user_ids() == set()


def test_user_id_rules_allow_at_sign_and_255_characters(sc, emu):
    sc.upsert_users([{"id": "a@b_c-d"}, {"id": "x" * 255}])
    assert emu.user_ids() == {"a@b_c-d", "x" * 255}
    with pytest.raises(StreamAPIException):
        sc.upsert_user({"id": "x" * 256})


def test_partial_update_sets_and_unsets(gs, sc, emu):
    sc.upsert_user({"id": "cy", "name": "Cy", "color": "red", "prefs": {"a": 1}})
    response = gs.update_users_partial(
        users=[UpdateUserPartialRequest(id="cy", set={"name": "Cyrus", "prefs.b": 2}, unset=["color"])]
    )
    user = response.data.users["cy"]
    assert user.name == "Cyrus" and user.custom == {"prefs": {"a": 1, "b": 2}}
    assert emu.count(op.UPDATE_USERS_PARTIAL) == 1


def test_partial_update_of_an_unknown_user_is_not_found(sc):
    with pytest.raises(StreamAPIException) as caught:
        sc.update_user_partial({"id": "nobody", "set": {"name": "x"}})
    assert caught.value.status_code == 404 and caught.value.error_code == 16


def test_query_users_by_eq_and_in_with_sort_and_paging(gs, sc):
    sc.upsert_users([{"id": f"q{i}", "rank": i} for i in range(5)])
    assert [u["id"] for u in sc.query_users({"id": {"$in": ["q1", "q3", "zz"]}})["users"]] == ["q1", "q3"]
    data = gs.query_users(QueryUsersPayload(filter_conditions={"id": {"$eq": "q2"}})).data
    assert [u.id for u in data.users] == ["q2"]
    page = sc.query_users({"rank": {"$gte": 1}}, {"rank": -1}, limit=2, offset=1)["users"]
    assert [u["id"] for u in page] == ["q3", "q2"]


def test_deactivate_and_reactivate_one_user(gs, sc, emu):
    sc.upsert_user({"id": "dee"})
    assert sc.deactivate_user("dee")["user"]["deactivated_at"]
    assert sc.query_users({"id": "dee"})["users"] == []
    assert sc.query_users({"id": "dee"}, include_deactivated_users=True)["users"]
    assert gs.reactivate_user("dee").data.user.deactivated_at is None
    assert emu.count(op.DEACTIVATE_USER) == 1 and emu.count(op.REACTIVATE_USER) == 1


def test_deactivate_many_is_a_task(gs, emu):
    gs.upsert_users(UserRequest(id="e1"), UserRequest(id="e2"))
    task_id = gs.deactivate_users(user_ids=["e1", "e2"]).data.task_id
    task = gs.get_task(task_id).data
    assert task.status == "completed" and len(task.result["users"]) == 2
    assert emu.get_user("e1")["deactivated_at"]
    assert emu.count(op.GET_TASK) == 1


def test_delete_user_soft_then_hard(sc, emu):
    sc.upsert_users([{"id": "f1"}, {"id": "f2"}])
    assert sc.delete_user("f1")["user"]["deleted_at"]
    assert emu.get_user("f1")["deleted_at"]
    sc.delete_user("f2", hard_delete=True)
    assert emu.get_user("f2") is None
    with pytest.raises(StreamAPIException) as caught:
        sc.delete_user("f2")
    assert caught.value.status_code == 404


def test_delete_many_is_a_task_and_restore_undoes_soft_deletes(gs, sc, emu):
    sc.upsert_users([{"id": "g1"}, {"id": "g2"}])
    task_id = gs.delete_users(user_ids=["g1", "g2"], user="soft").data.task_id
    assert sc.get_task(task_id)["result"] == {"g1": {"status": "ok"}, "g2": {"status": "ok"}}
    assert emu.get_user("g1")["deleted_at"]
    sc.restore_users(["g1"])
    assert "deleted_at" not in emu.get_user("g1")
    hard = sc.delete_users(["g2"], "hard")["task_id"]
    assert gs.get_task(hard).data.status == "completed" and emu.get_user("g2") is None


def test_unknown_task_is_not_found(gs):
    with pytest.raises(StreamApiException) as caught:
        gs.get_task("no-such-task")
    assert caught.value.status_code == 404 and caught.value.code == 16
