"""/account: a signed-in person's verification methods, recovery codes and trusted browsers.

- Every form is POST with the session's CSRF token.
- Once a person has a method, adding, renaming or removing one, and new recovery codes,
  need a fresh MFA (`idp.mfa.freshness`: a second factor within 10 minutes); otherwise the
  page asks for one first (/account/verify) and comes back. Revoking a trusted browser
  only takes access away, so it needs none.
- While a portal of the person requires MFA (`idp.mfa.requirement.mfa_required_for`),
  their last method cannot be removed (`idp.mfa.methods.remove_method`).
- Methods are listed by name and dates only: no address, number or key is shown.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from idp import audit
from idp.account import bp
from idp.db import db
from idp.errors import NotFound
from idp.legacy.accounts import is_placeholder
from idp.login.sessions import current_session
from idp.login.transaction import browser_id
from idp.mfa import codes, passkeys, totp
from idp.mfa.freshness import FRESH_FOR, mfa_is_fresh, record_fresh_mfa
from idp.mfa.methods import (
    KINDS,
    MfaError,
    confirm_method,
    confirmed_methods,
    find_method,
    method_label,
    offered_kinds,
    pending_method,
    preferred_method,
    remove_method,
    retry_after,
    throttle_wait,
    usable_methods,
)
from idp.mfa.recovery import (
    generate_recovery_codes,
    recovery_verdict,
    remaining_recovery_codes,
    use_recovery_code,
)
from idp.mfa.requirement import mfa_required_for
from idp.mfa.trusted import (
    is_this_browser,
    revoke_trusted_device,
    revoke_trusted_devices,
    trusted_devices,
)
from idp.models import IdpSession, MfaMethod, User
from idp.policy import LoginPolicy
from idp.security import throttle
from idp.security.csrf import check_csrf
from idp.users import EMAIL_PATTERN

RECOVERY = "recovery"
MAX_FIELD = 320
SMS_RISK = ("Text messages are the least safe choice: they can be read on a locked phone, or "
            "sent to someone who has your number moved to their SIM card.")
FRESH_MINUTES = int(FRESH_FOR.total_seconds() // 60)


def _page(template: str, **context: Any) -> str:
    return render_template(f"account/{template}.html", client=None, **context)


def _signed_in() -> IdpSession | None:
    return current_session()


def _binding() -> passkeys.Binding:
    """Passkey ceremonies of the account page are bound to this browser (and the person)."""
    return passkeys.Binding(browser_id=browser_id())


def _audit(kind: str, user: User, **details: Any) -> None:
    """An account change in the audit log (names and kinds only: never a secret)."""
    audit.record(kind, actor=f"user:{user.sub}", subject=user.email, **details)


def _brand() -> str:
    return totp.default_issuer()


def _needs_step_up(record: IdpSession) -> bool:
    """Changes need a fresh MFA once the person has a method to prove it with."""
    return bool(usable_methods(record.user)) and not mfa_is_fresh(record)


def _step_up(next_path: str) -> Response:
    return redirect(url_for("account.verify", next=next_path), 303)


def _safe_next(value: str | None) -> str:
    """Only a path of this site's account pages (no open redirect)."""
    if value and value.startswith("/account") and not urlsplit(value).netloc \
            and "\\" not in value:
        return value
    return url_for("account.index")


def _signed_out_page() -> tuple[str, int]:
    return _page("signed_out"), 401


def _describe_browser(user_agent: str | None) -> str:
    """A short name for a browser from its User-Agent ("Chrome on Windows")."""
    agent = user_agent or ""
    browser = next((name for token, name in (
        ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
        ("Safari/", "Safari")) if token in agent), "A browser")
    system = next((name for token, name in (
        ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("Windows", "Windows"),
        ("Mac OS X", "Mac"), ("CrOS", "ChromeOS"), ("Linux", "Linux")) if token in agent), "")
    return f"{browser} on {system}" if system else browser


# -- the page ------------------------------------------------------------------------------


@bp.get("/account")
def index() -> str | tuple[str, int]:
    """The person's methods, recovery codes and trusted browsers."""
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    return _index_page(record)


def _index_page(record: IdpSession, **context: Any) -> str:
    user = record.user
    methods = confirmed_methods(user)
    trusts = [(row, _describe_browser(row.user_agent), is_this_browser(row))
              for row in trusted_devices(user)]
    return _page(
        "index", user=user, methods=[(m, method_label(m), KINDS[m.kind].label
                                      if m.kind in KINDS else m.kind) for m in methods],
        recovery_left=remaining_recovery_codes(user), trusts=trusts,
        protected=mfa_required_for(user) and len(methods) == 1,
        fresh=mfa_is_fresh(record), fresh_minutes=FRESH_MINUTES,
        can_add=bool(offered_kinds(LoginPolicy())) and not is_placeholder(user), **context,
    )


# -- step-up: a fresh second factor --------------------------------------------------------


@bp.route("/account/verify", methods=["GET", "POST"])
def verify() -> Response | str | tuple[str, int]:
    """Ask for a second factor now, then go back to `next`."""
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    user = record.user
    methods = usable_methods(user)
    next_path = _safe_next(request.values.get("next"))
    if not methods or mfa_is_fresh(record):
        return redirect(next_path, 303)
    if request.method == "GET":
        return _verify_page(user, methods, next_path, request.args.get("method"),
                            choose=request.args.get("choose") == "1")
    check_csrf()
    chosen = request.form.get("method", "")
    entered = request.form.get("code", "")[:100]
    if chosen == RECOVERY:
        verdict = recovery_verdict(user)
        if not verdict.allowed:
            return throttle.too_many_attempts(_verify_page(
                user, methods, next_path, RECOVERY, error=codes.CodeCheck.THROTTLED.value),
                verdict.wait_seconds)
        if not use_recovery_code(user, entered):
            return _verify_page(user, methods, next_path, RECOVERY,
                                error="That recovery code didn't work. Each code works only once.")
        record_fresh_mfa(record, None)
        return redirect(next_path, 303)
    method = find_method(user, chosen)
    if method is None or method not in methods:
        return _verify_page(user, methods, next_path, None)
    if request.form.get("action") == "resend" and method.kind in ("email", "sms"):
        try:
            codes.send_code(method, _brand())
        except MfaError as exc:
            return _verify_page(user, methods, next_path, str(method.id), error=str(exc))
        return _verify_page(user, methods, next_path, str(method.id), notice="We sent a new code.")
    if throttle_wait(method) is not None:
        return throttle.too_many_attempts(_verify_page(
            user, methods, next_path, str(method.id), error=codes.CodeCheck.THROTTLED.value),
            retry_after(method))
    problem = _check_second_factor(user, method, entered, request.form.get("credential", ""))
    if isinstance(problem, str):
        return _verify_page(user, methods, next_path, str(method.id), error=problem)
    record_fresh_mfa(record, problem[0])
    return redirect(next_path, 303)


def _check_second_factor(user: User, method: MfaMethod, entered: str,
                         credential: str) -> str | tuple[str | None]:
    """(amr value,) when the method passed, else the message for the person."""
    if throttle_wait(method) is not None:
        return codes.CodeCheck.THROTTLED.value
    if method.kind == "webauthn":
        try:
            used = passkeys.verify_assertion(credential, passkeys.SECOND_FACTOR, _binding(), user)
        except MfaError as exc:
            return str(exc)
        return (used.amr,)
    if method.kind == "totp":
        if not totp.verify_totp(method, entered):
            return ("That code didn't work. Enter the newest 6-digit code your app shows "
                    "for this account.")
        return (KINDS["totp"].amr,)
    result, _ = codes.check_code(method, entered)
    if result is not codes.CodeCheck.OK:
        return result.value
    return (KINDS[method.kind].amr,)


def _verify_page(user: User, methods: list[MfaMethod], next_path: str, selected: str | None,
                 choose: bool = False, **context: Any) -> str:
    if choose:
        return _page("verify", mode="choose", next_path=next_path, methods=[
            (m, method_label(m), KINDS[m.kind].label if m.kind == "webauthn"
             else codes.mask_destination(m)) for m in methods], **context)
    method = None
    if selected != RECOVERY:
        method = find_method(user, selected) if selected else None
        if method is None or method not in methods:
            method = preferred_method(methods)
    options = None
    destination = ""
    if method is not None and method.kind == "webauthn":
        options = passkeys.options_attribute(
            passkeys.authentication_options(passkeys.SECOND_FACTOR, _binding(), user))
    if method is not None and method.kind in ("email", "sms"):
        if request.method == "GET" and codes.live_code(method) is None \
                and not codes.resend_wait(method):
            try:
                codes.send_code(method, _brand())
            except MfaError as exc:
                context.setdefault("error", str(exc))
        latest = codes.latest_code(method)
        destination = codes.mask_destination(method, latest.destination) if latest else ""
    return _page("verify", mode="code", method=method,
                 kind=method.kind if method else RECOVERY,
                 method_ref=str(method.id) if method else RECOVERY, options=options,
                 destination=destination, next_path=next_path, fresh_minutes=FRESH_MINUTES,
                 **context)


# -- changing methods ----------------------------------------------------------------------


def _method_or_404(user: User, method_id: int) -> MfaMethod:
    method = find_method(user, method_id)
    if method is None or not method.is_confirmed:
        raise NotFound("That verification method doesn't exist (any more).")
    return method


@bp.post("/account/methods/<int:method_id>/rename")
def rename_method(method_id: int) -> Response | str | tuple[str, int]:
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    check_csrf()
    if _needs_step_up(record):
        return _step_up(url_for("account.index"))
    method = _method_or_404(record.user, method_id)
    try:
        passkeys.rename_credential(method, request.form.get("label", "")[:MAX_FIELD])
    except MfaError as exc:
        return _index_page(record, error=str(exc))
    _audit("mfa.method_renamed", record.user, method=method.id, method_kind=method.kind)
    return _index_page(record, notice=f"Renamed to \u201c{method.label}\u201d.")


@bp.post("/account/methods/<int:method_id>/remove")
def remove(method_id: int) -> Response | str | tuple[str, int]:
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    check_csrf()
    if _needs_step_up(record):
        return _step_up(url_for("account.index"))
    user = record.user
    method = _method_or_404(user, method_id)
    name = method_label(method)
    kind = method.kind
    try:
        remove_method(user, method, mfa_required_for(user))
    except MfaError as exc:
        return _index_page(record, error=str(exc))
    _audit("mfa.method_removed", user, method=method_id, method_kind=kind)
    return _index_page(record, notice=f"Removed \u201c{name}\u201d.")


@bp.post("/account/recovery-codes")
def new_recovery_codes() -> Response | str | tuple[str, int]:
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    check_csrf()
    user = record.user
    if not usable_methods(user):
        return _index_page(record, error="Add a verification method first.")
    if _needs_step_up(record):
        return _step_up(url_for("account.index"))
    fresh_codes = generate_recovery_codes(user)
    _audit("mfa.recovery_codes_replaced", user)
    return _page("recovery_codes", recovery_codes=fresh_codes)


@bp.post("/account/trusted/<int:device_id>/revoke")
def revoke_trust(device_id: int) -> Response | str | tuple[str, int]:
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    check_csrf()
    if not revoke_trusted_device(record.user, device_id):
        return _index_page(record, error="That browser isn't trusted any more.")
    _audit("mfa.trust_revoked", record.user, device=device_id)
    return _index_page(record, notice="That browser will ask for verification again.")


@bp.post("/account/trusted/revoke-all")
def revoke_all_trust() -> Response | str | tuple[str, int]:
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    check_csrf()
    count = revoke_trusted_devices(record.user)
    _audit("mfa.trust_revoked", record.user, devices=count)
    return _index_page(record, notice=f"Revoked {count} trusted browser"
                       f"{'' if count == 1 else 's'}.")


# -- adding a method -----------------------------------------------------------------------


@bp.route("/account/add", methods=["GET", "POST"])
@bp.route("/account/add/<kind>", methods=["GET", "POST"])
def add_method(kind: str | None = None) -> Response | str | tuple[str, int]:
    """Set up another method: passkey, authenticator app, email or text message."""
    record = _signed_in()
    if record is None:
        return _signed_out_page()
    user = record.user
    kinds = offered_kinds(LoginPolicy())
    here = url_for("account.add_method", kind=kind) if kind else url_for("account.add_method")
    if _needs_step_up(record):
        if request.method == "POST":
            check_csrf()
        return _step_up(here)
    if is_placeholder(user):
        # A legacy placeholder moves to its email first (like the MFA login steps).
        raise NotFound("Sign in with your email address first to add a verification method.")
    if kind is None:
        return _page("add_method", mode="choose", kinds=KINDS, offered=kinds, sms_risk=SMS_RISK)
    if kind not in kinds:
        raise NotFound("That kind of verification method can't be added here.")
    if request.method == "GET":
        return _add_page(user, kind, restart=request.args.get("restart") == "1",
                         change=request.args.get("change") == "1")
    check_csrf()
    action = request.form.get("action", "")
    if kind == "webauthn":
        label = request.form.get("label", "")[:MAX_FIELD]
        try:
            method = passkeys.register_credential(user, request.form.get("credential", ""),
                                                  label, _binding())
        except MfaError as exc:
            return _add_page(user, kind, error=str(exc), label=label)
        return _added(record, method)
    if kind == "totp":
        app = totp.start_enrolment(user)
        if not totp.verify_totp(app, request.form.get("code", "")[:100]):
            return _add_page(user, kind, error="That code didn't work. Enter the newest "
                             "6-digit code your app shows for this account.")
        confirm_method(app)
        db.session.commit()
        return _added(record, app)
    if action == "send":
        return _send_code(user, kind, request.form.get("address", "")[:MAX_FIELD])
    pending = pending_method(user, kind)
    if pending is None:
        return _add_page(user, kind)
    if action == "resend":
        try:
            codes.send_code(pending, _brand())
        except MfaError as exc:
            return _add_page(user, kind, error=str(exc))
        return _add_page(user, kind, notice="We sent a new code.")
    result, row = codes.check_code(pending, request.form.get("code", "")[:100])
    if result is not codes.CodeCheck.OK or row is None:
        return _add_page(user, kind, error=result.value)
    pending.destination = row.destination  # the code proves the address it went to
    if kind == "sms" and not user.phone_verified:
        user.phone, user.phone_verified = row.destination, True
    confirm_method(pending)
    db.session.commit()
    return _added(record, pending)


def _add_page(user: User, kind: str, restart: bool = False, change: bool = False,
              **context: Any) -> str:
    if kind == "webauthn":
        options = passkeys.registration_options(user, _binding())
        return _page("add_method", mode="webauthn", kinds=KINDS, kind=kind,
                     options=passkeys.options_attribute(options), **context)
    if kind == "totp":
        method = totp.start_enrolment(user, restart=restart)
        secret = totp.secret_of(method)
        uri = totp.provisioning_uri(secret, user.email, _brand())
        return _page("add_method", mode="totp", kinds=KINDS, kind=kind,
                     secret=totp.grouped(secret), otpauth_uri=uri,
                     qr_code=totp.qr_code_data_uri(uri), **context)
    pending = pending_method(user, kind)
    if pending is not None and codes.latest_code(pending) is not None and not change \
            and "address" not in context:
        latest = codes.latest_code(pending)
        where = latest.destination if latest is not None else pending.destination
        return _page("add_method", mode="code", kinds=KINDS, kind=kind,
                     destination=codes.mask_destination(pending, where),
                     resend_wait=codes.resend_wait(pending), **context)
    context.setdefault("address", user.email if kind == "email" else "")
    return _page("add_method", mode="address", kinds=KINDS, kind=kind, sms_risk=SMS_RISK,
                 **context)


def _send_code(user: User, kind: str, address: str) -> str:
    try:
        if kind == "sms":
            destination = codes.normalise_phone(address)
        else:
            destination = address.strip().lower()
            if not EMAIL_PATTERN.match(destination):
                raise MfaError("Enter an email address, like name@example.com.")
    except MfaError as exc:
        return _add_page(user, kind, address=address, error=str(exc))
    pending = pending_method(user, kind) or MfaMethod(user_id=user.id, kind=kind)
    db.session.add(pending)
    pending.destination = destination
    db.session.commit()
    try:
        codes.send_code(pending, _brand(), destination)
    except MfaError as exc:
        return _add_page(user, kind, address=address, error=str(exc))
    return _add_page(user, kind)


def _added(record: IdpSession, method: MfaMethod) -> str:
    """The method works; a first method also gets recovery codes (shown once)."""
    user = record.user
    _audit("mfa.method_added", user, method=method.id, method_kind=method.kind)
    if not mfa_is_fresh(record):
        # Setting up the first method proved it just now: that is a fresh second factor.
        value = passkeys.amr_of(method) if method.kind == "webauthn" \
            else KINDS[method.kind].amr
        record_fresh_mfa(record, value)
    recovery_codes = None
    if remaining_recovery_codes(user) == 0:
        recovery_codes = generate_recovery_codes(user)
    return _page("added", method_name=method_label(method), recovery_codes=recovery_codes)
