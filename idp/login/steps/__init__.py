"""Login steps, in the order they are considered. Adding a step touches no other step."""

from __future__ import annotations

from idp.login.steps.base import Step
from idp.login.steps.consent import ConsentStep
from idp.login.steps.mfa_challenge import MfaChallengeStep
from idp.login.steps.mfa_enroll import MfaEnrollStep
from idp.login.steps.migrate_legacy import MigrateLegacyStep
from idp.login.steps.password import PasswordStep
from idp.login.steps.set_password import SetPasswordStep
from idp.login.steps.verify_email import VerifyEmailStep

# Legacy usernames move to an email (migrate_legacy, verify_email, set_password) right
# after the password step: later steps see the person's real account.
STEPS: list[Step] = [PasswordStep(), MigrateLegacyStep(), VerifyEmailStep(), SetPasswordStep(),
                     MfaEnrollStep(), MfaChallengeStep(), ConsentStep()]


def next_step(state: object) -> Step | None:
    """The first step still needed, recomputed from facts every time."""
    for step in STEPS:
        if step.is_needed(state):  # type: ignore[arg-type]
            return step
    return None


def find_step(name: str) -> Step | None:
    return next((step for step in STEPS if step.name == name), None)
