"""Typed references to activities, importable by workflows (which may not import activity
code) and by the activities that implement them.

An `ActivityRef` names an activity and its one input and one output dataclass. A workflow
runs it with `workflow_steps.run(REF, arg)` and gets `Out` back, typed; an activity class
implements it with `@REF.implement`, which registers the method under the reference's name
and lets mypy check that the method takes `In` and answers `Out`. The name is what
recorded histories know the activity by, so a reference is renamed only with a patch."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from temporalio import activity

In = TypeVar("In")
Out = TypeVar("Out")
Self = TypeVar("Self")


@dataclass(frozen=True)
class ActivityRef(Generic[In, Out]):
    name: str
    input: type[In]
    output: type[Out]

    def implement(self, method: Callable[[Self, In], Awaitable[Out]]) -> Callable[[Self, In], Awaitable[Out]]:
        defined: Callable[[Self, In], Awaitable[Out]] = activity.defn(name=self.name)(method)
        return defined

    @property
    def result_type(self) -> Any:
        """What the data converter decodes the result as (None for an activity that answers
        nothing)."""
        return None if self.output is type(None) else self.output


NoResult = type(None)
"""The output of an activity that answers nothing (closing an exception row)."""
