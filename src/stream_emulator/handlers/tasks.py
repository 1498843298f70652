"""Stream's async tasks: the emulator applies the work at once and reports it completed."""

from __future__ import annotations

import uuid

from ..call import Call
from ..clock import now_ns
from ..errors import not_found


def new_task(call: Call, result: dict) -> str:
    """Store a completed task with its result; returns its id."""
    task_id = str(uuid.uuid4())
    now = now_ns()
    call.state.tasks[task_id] = {
        "task_id": task_id,
        "status": "completed",
        "created_at": now,
        "updated_at": now,
        "result": result,
    }
    return task_id


def get_task(call: Call) -> dict:
    """GET /tasks/{id}."""
    task = call.state.tasks.get(call.params[0])
    if task is None:
        raise not_found(f"Can't find task with id {call.params[0]}")
    time = call.dialect.time
    return dict(task, created_at=time(task["created_at"]), updated_at=time(task["updated_at"]))
