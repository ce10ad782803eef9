"""The Midjourney / Suno wire rules (relay task_protocol.py) and the poller's reading of upstream
answers (tasks platforms.py), without I/O."""

from __future__ import annotations

import orjson
import pytest
from veloera.tasks.v1 import tasks_pb2

from services.relay.tasks import protocol as tp
from services.tasks import platforms

UPSCALE = "mj_upscale"


@pytest.mark.parametrize(
    ("kind", "body", "action", "model", "origin"),
    [
        ("imagine", {"prompt": "fox"}, "IMAGINE", "mj_imagine", ""),
        ("change", {"taskId": "t1", "action": "upscale", "index": 2}, "UPSCALE", UPSCALE, "t1"),
        ("change", {"taskId": "t1", "action": "REROLL"}, "REROLL", "mj_reroll", "t1"),
        ("simple-change", {"content": "t9 V3"}, "VARIATION", "mj_variation", "t9"),
        ("simple-change", {"content": "t9 R"}, "REROLL", "mj_reroll", "t9"),
        ("action", {"taskId": "t2", "customId": "MJ::JOB::upsample::1"}, "UPSCALE", UPSCALE, "t2"),
        ("action", {"taskId": "t2", "customId": "MJ::Inpaint::1"}, "INPAINT", "mj_inpaint", "t2"),
        ("modal", {"taskId": "t3"}, "MODAL", "mj_modal", "t3"),
        ("blend", {"base64Array": ["a", "b"]}, "BLEND", "mj_blend", ""),
        ("describe", {"base64": "a"}, "DESCRIBE", "mj_describe", ""),
        ("swap", {"sourceBase64": "a", "targetBase64": "b"}, "SWAP_FACE", "swap_face", ""),
    ],
)
def test_submits_name_their_action_and_priced_model(
    kind: str, body: dict[str, object], action: str, model: str, origin: str
) -> None:
    submit = tp.mj_submit(kind, body)
    assert (submit.action, submit.model, submit.origin_task) == (action, model, origin)


def test_upload_is_charged_but_not_a_task() -> None:
    submit = tp.mj_submit("upload-discord-images", {"base64Array": ["a"]})
    assert submit.model == "mj_upload" and not submit.is_task


@pytest.mark.parametrize(
    ("kind", "body", "words"),
    [
        ("imagine", {}, "prompt is required"),
        ("imagine", {"prompt": ["x"]}, "prompt must be a string"),
        ("blend", {"base64Array": "ab"}, "list of base64 images"),
        ("blend", {"base64Array": ["a"] * 6}, "2 to 5 images"),
        ("change", {"taskId": "t", "action": "UPSCALE", "index": 9}, "index must be 1 to 4"),
        ("simple-change", {"content": "t1 U5"}, "content must be"),
        ("nothing", {"prompt": "x"}, "unknown submit action"),
    ],
)
def test_bad_submits_are_refused_with_the_reason(
    kind: str, body: dict[str, object], words: str
) -> None:
    with pytest.raises(tp.TaskInputError, match=words):
        tp.mj_submit(kind, body)


def test_answers_are_accepted_only_with_codes_1_21_22() -> None:
    for code, accepted in ((1, True), (21, True), (22, True), (4, False), (24, False)):
        answer = tp.mj_answer(orjson.dumps({"code": code, "result": "abc"}))
        assert answer is not None and answer.accepted is accepted
    assert tp.mj_answer(b"<html>") is None
    assert tp.mj_answer(b'{"code": "1"}') is None


def test_poller_reads_midjourney_and_suno_answers() -> None:
    mj = orjson.dumps(
        [
            {"id": "a", "status": "IN_PROGRESS", "progress": "40%", "startTime": 5000},
            {"id": "b", "status": "IN_PROGRESS", "failReason": "banned"},
            {"id": "c", "status": "SUCCESS", "progress": "100%", "imageUrl": "u"},
            "junk",
        ]
    ).decode()
    updates = platforms.parse(tasks_pb2.PLATFORM_MIDJOURNEY, mj)
    assert updates["a"].status == tasks_pb2.TASK_STATUS_IN_PROGRESS
    assert updates["a"].progress == "40%" and updates["a"].start_time == 5
    assert updates["b"].status == tasks_pb2.TASK_STATUS_FAILURE  # a fail reason before 100%
    assert updates["c"].progress == "100%" and set(updates) == {"a", "b", "c"}
    suno = orjson.dumps(
        {"code": "success", "data": [{"task_id": "s", "status": "FAILURE", "fail_reason": "x"}]}
    ).decode()
    [(task_id, update)] = platforms.parse(tasks_pb2.PLATFORM_SUNO, suno).items()
    assert task_id == "s" and update.status == tasks_pb2.TASK_STATUS_FAILURE
    for platform, body in (
        (tasks_pb2.PLATFORM_MIDJOURNEY, "{}"),
        (tasks_pb2.PLATFORM_SUNO, '{"code": "error"}'),
        (tasks_pb2.PLATFORM_SUNO, "not json"),
    ):
        with pytest.raises(platforms.BadAnswer):
            platforms.parse(platform, body)
