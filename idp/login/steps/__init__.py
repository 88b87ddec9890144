"""Login steps, in the order they are considered. Adding a step touches no other step."""

from __future__ import annotations

from idp.login.steps.base import Step
from idp.login.steps.consent import ConsentStep
from idp.login.steps.password import PasswordStep

STEPS: list[Step] = [PasswordStep(), ConsentStep()]


def next_step(state: object) -> Step | None:
    """The first step still needed, recomputed from facts every time."""
    for step in STEPS:
        if step.is_needed(state):  # type: ignore[arg-type]
            return step
    return None


def find_step(name: str) -> Step | None:
    return next((step for step in STEPS if step.name == name), None)
