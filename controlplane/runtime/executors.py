"""Executors perform a step's side effect, given its execution key (the idempotency key of the effect).

`noop.echo` returns its inputs. `http.webhook` (signed POST to a registered runner, with the reference
runner `manage.py runner`) is the next piece of issue 3 and is refused as unavailable until it lands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ExecutorError(Exception):
    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code


Executor = Callable[..., dict[str, Any]]


def _noop_echo(*, execution_key: str, inputs: dict[str, Any], traceparent: str) -> dict[str, Any]:
    return {"echo": inputs, "execution_key": execution_key}


_EXECUTORS: dict[str, Executor] = {"noop.echo": _noop_echo}


def run(name: str, *, execution_key: str, inputs: dict[str, Any], traceparent: str) -> dict[str, Any]:
    executor = _EXECUTORS.get(name)
    if executor is None:
        raise ExecutorError("EXECUTOR_UNAVAILABLE", f"no executor {name!r} in this process")
    return executor(execution_key=execution_key, inputs=inputs, traceparent=traceparent)
