"""The `idp` command line (DESIGN.md lists the contract).

Every failure prints one line, `idp: error: ...`, and exits non-zero; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from flask import Flask
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError

from idp.config import ConfigError
from idp.ops.logs import configure_logging

if TYPE_CHECKING:
    from idp.models import Portal, User

class CliError(Exception):
    """Bad input from the operator: printed as one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"idp: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="idp", description="Portal IdP command line")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    init = commands.add_parser("init", help="create or upgrade the database, generate keys")
    init.add_argument("--demo", action="store_true",
                      help="add the demo portals, clients and people")
    init.set_defaults(handler=cmd_init)

    serve = commands.add_parser("serve", help="run the development server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(handler=cmd_serve)

    clients = commands.add_parser("clients", help="client applications")
    client_commands = clients.add_subparsers(dest="action", required=True, parser_class=_Parser)
    create = client_commands.add_parser("create", help="register a client")
    create.add_argument("--name", required=True)
    create.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris")
    create.add_argument("--public", action="store_true", help="no secret; PKCE required")
    create.add_argument("--post-logout-redirect-uri", action="append", default=[],
                        dest="post_logout_redirect_uris")
    create.add_argument("--backchannel-logout-uri")
    create.add_argument("--portal", help="portal slug")
    create.add_argument("--grant-type", action="append", dest="grant_types")
    create.add_argument("--scope", action="append", dest="scopes")
    create.add_argument("--first-party", action="store_true", help="skip the consent screen")
    create.add_argument("--auth-method", help="token endpoint auth method")
    create.add_argument("--jwks-file", help="public JWK Set for private_key_jwt")
    create.add_argument("--client-id", help="choose the client_id (default: random)")
    create.add_argument("--json", action="store_true", help="print client_id and secret as JSON")
    create.set_defaults(handler=cmd_clients_create)

    users = commands.add_parser("users", help="people")
    user_commands = users.add_subparsers(dest="action", required=True, parser_class=_Parser)
    user_create = user_commands.add_parser("create", help="create a user")
    user_create.add_argument("--email", required=True)
    user_create.add_argument("--password", required=True)
    user_create.add_argument("--name")
    user_create.add_argument("--email-verified", action="store_true")
    user_create.set_defaults(handler=cmd_users_create)
    send_reset = user_commands.add_parser(
        "send-reset", help="email a person a single-use link to choose a new password"
    )
    send_reset.add_argument("--email", required=True)
    send_reset.add_argument("--portal", help="portal slug (branding, link lifetime, home page)")
    send_reset.set_defaults(handler=cmd_users_send_reset)
    reset_mfa = user_commands.add_parser(
        "reset-mfa", help="remove a person's MFA (lost phone): they enrol again at next sign-in"
    )
    reset_mfa.add_argument("--email", required=True)
    reset_mfa.add_argument("--reason", required=True, help="why (logged; e.g. a ticket number)")
    reset_mfa.set_defaults(handler=cmd_users_reset_mfa)
    _add_legacy_commands(user_commands)

    portals = commands.add_parser("portals", help="portals")
    portal_commands = portals.add_subparsers(dest="action", required=True, parser_class=_Parser)
    portal_create = portal_commands.add_parser("create", help="create a portal")
    portal_create.add_argument("--slug", required=True)
    portal_create.add_argument("--name", required=True)
    portal_create.set_defaults(handler=cmd_portals_create)
    portal_set = portal_commands.add_parser(
        "set", help="change branding (name, logo_url, primary_color, home_url) or policy"
    )
    portal_set.add_argument("slug")
    portal_set.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    portal_set.set_defaults(handler=cmd_portals_set)

    contacts = commands.add_parser("contacts", help="a portal's contact directory")
    contact_commands = contacts.add_subparsers(dest="action", required=True,
                                               parser_class=_Parser)
    contacts_import = contact_commands.add_parser(
        "import", help="create or update contacts from a CSV (contact_id,email,name,phone)"
    )
    contacts_import.add_argument("file", metavar="FILE.csv")
    contacts_import.add_argument("--portal", required=True, help="portal slug")
    contacts_import.set_defaults(handler=cmd_contacts_import)

    _add_invitation_commands(commands)
    _add_admin_commands(commands)

    worker = commands.add_parser("worker", help="send queued email and text messages")
    worker.add_argument("--once", action="store_true", help="send what is due, then exit")
    worker.set_defaults(handler=cmd_worker)

    keys = commands.add_parser("keys", help="signing and encryption keys")
    key_commands = keys.add_subparsers(dest="action", required=True, parser_class=_Parser)
    rotate = key_commands.add_parser("rotate", help="add new signing keys; old ones stay published")
    rotate.add_argument("--alg", choices=["RS256", "ES256"], action="append", dest="algs")
    rotate.set_defaults(handler=cmd_keys_rotate)
    rotate_encryption = key_commands.add_parser(
        "rotate-encryption",
        help="re-encrypt stored secrets under the first of security.encryption_keys",
    )
    rotate_encryption.set_defaults(handler=cmd_keys_rotate_encryption)
    gen = key_commands.add_parser("generate-encryption-key",
                                  help="print a new key for security.encryption_keys")
    gen.set_defaults(handler=cmd_generate_encryption_key, needs_app=False)
    return parser


def _add_admin_commands(commands: Any) -> None:
    admins = commands.add_parser("admins", help="who may use the admin console")
    actions = admins.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for name, helptext, handler in (
        ("grant", "give an account a role (it must have MFA to sign in)", cmd_admins_grant),
        ("revoke", "take a role away", cmd_admins_revoke),
    ):
        action = actions.add_parser(name, help=helptext)
        action.add_argument("--email", required=True)
        action.add_argument("--role", required=True, choices=["admin", "support", "portal_admin"])
        action.add_argument("--portal", help="portal slug (portal_admin only)")
        action.set_defaults(handler=handler)
    listing = actions.add_parser("list", help="every role held, one per line")
    listing.set_defaults(handler=cmd_admins_list)


def _add_invitation_commands(commands: Any) -> None:
    invitations = commands.add_parser("invitations", help="invite people to a portal")
    actions = invitations.add_subparsers(dest="action", required=True, parser_class=_Parser)
    send = actions.add_parser("send", help="invite one person (email with a set-password link)")
    send.add_argument("--portal", required=True, help="portal slug")
    send.add_argument("--email", required=True)
    send.add_argument("--name")
    send.add_argument("--contact-id", help="the portal's contact id for this person")
    send.add_argument("--message-file", help="message text instead of the portal's default")
    send.set_defaults(handler=cmd_invitations_send)
    bulk = actions.add_parser("bulk", help="invite everyone in a CSV (email[,name,contact_id,...])")
    bulk.add_argument("file", metavar="FILE.csv")
    bulk.add_argument("--portal", required=True, help="portal slug")
    bulk.add_argument("--template-file",
                      help="message template with {{ login_link }} (and {{ name }}, columns)")
    bulk.add_argument("--json", action="store_true", help="print the report as JSON")
    bulk.set_defaults(handler=cmd_invitations_bulk)
    listing = actions.add_parser("list", help="a portal's invitations and their status")
    listing.add_argument("--portal", required=True, help="portal slug")
    listing.add_argument("--status", choices=["sent", "opened", "accepted", "expired", "resent"])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_invitations_list)
    resend = actions.add_parser("resend", help="send a pending invitation again with a new link")
    resend.add_argument("--portal", required=True, help="portal slug")
    resend.add_argument("--email", required=True)
    resend.set_defaults(handler=cmd_invitations_resend)


def _add_legacy_commands(user_commands: Any) -> None:
    legacy_import = user_commands.add_parser(
        "import", help="create or update a portal's legacy accounts from a CSV "
                       "(legacy_username,email,name,phone,contact_id,password_hash[,salt][,scheme])"
    )
    legacy_import.add_argument("file", metavar="FILE.csv")
    legacy_import.add_argument("--portal", required=True, help="portal slug")
    legacy_import.add_argument("--json", action="store_true", help="print the report as JSON")
    legacy_import.set_defaults(handler=cmd_users_import)
    status = user_commands.add_parser(
        "legacy-status", help="a portal's legacy accounts: migrated, linked, pending"
    )
    status.add_argument("--portal", required=True, help="portal slug")
    status.add_argument("--export-pending", metavar="FILE.csv",
                        help="write the pending accounts as CSV (for `idp invitations bulk`)")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_users_legacy_status)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[..., int] = args.handler
    try:
        if not getattr(args, "needs_app", True):
            return handler(args)
        app = _make_app()
        if args.command in ("init", "serve"):
            from idp.storage import initialise

            initialise(app)
        with app.app_context():
            return handler(args, app)
    except (ConfigError, CliError, ValueError) as exc:
        print(f"idp: error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        # A bad database.url, an unreachable server or a database not yet initialised is
        # bad input too: one line, not a traceback with the SQL.
        print(f"idp: error: {_describe_database_error(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        # e.g. an instance_path that cannot be created, or `serve` on a port in use.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"idp: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1


def _describe_database_error(exc: SQLAlchemyError) -> str:
    """One line saying what went wrong with the database, and what to do when obvious."""
    if isinstance(exc, ArgumentError):  # unparsable URL or unknown dialect
        return f"database.url: {str(exc).splitlines()[0]}"
    detail = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
    detail = detail.splitlines()[0] if detail else type(exc).__name__
    if "no such table" in detail or "does not exist" in detail:
        return f"database: {detail} (run `idp init` first)"
    return f"database: {detail}"


def _make_app() -> Flask:
    from idp.app import create_app

    return create_app()


def cmd_init(args: argparse.Namespace, app: Flask) -> int:
    settings = app.extensions["idp"].settings
    if args.demo:
        _seed_demo()
    print(f"idp: database ready at {_redact(settings.database_url)}; signing keys in place")
    return 0


def cmd_serve(args: argparse.Namespace, app: Flask) -> int:
    settings = app.extensions["idp"].settings
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    print(f"idp: serving {settings.server.issuer} on http://{host}:{port} (Ctrl-C stops)")
    configure_logging(settings)
    if settings.is_development:
        from idp.notify.worker import start_background_worker

        # Development runs the outbox worker in-process; production runs `idp worker`.
        start_background_worker(app)
        print(f"idp: outbox worker running; mail backend {settings.mail.backend!r}"
              + (f", mailbox at {settings.server.issuer}/dev/mailbox"
                 if settings.mail.backend == "dev" else ""))
    app.run(host=host, port=port, threaded=True, use_reloader=False)
    return 0


def cmd_worker(args: argparse.Namespace, app: Flask) -> int:
    from idp.notify.worker import deliver_due, run_worker

    if args.once:
        print(f"idp: sent {deliver_due(limit=1000)} message(s)")
        return 0
    print("idp: outbox worker running (Ctrl-C stops)")
    configure_logging(app.extensions["idp"].settings)
    try:
        run_worker(app)
    except KeyboardInterrupt:
        pass
    return 0


def cmd_clients_create(args: argparse.Namespace, app: Flask) -> int:
    from idp.clients import register_client

    jwks = None
    if args.jwks_file:
        try:
            with open(args.jwks_file, encoding="utf-8") as handle:
                jwks = json.load(handle)
        except (OSError, ValueError) as exc:
            raise CliError(f"--jwks-file: cannot read a JWK Set: {exc}") from None
    new = register_client(
        name=args.name,
        redirect_uris=args.redirect_uris,
        public=args.public,
        post_logout_redirect_uris=args.post_logout_redirect_uris,
        backchannel_logout_uri=args.backchannel_logout_uri,
        portal_slug=args.portal,
        grant_types=args.grant_types,
        scopes=args.scopes,
        first_party=args.first_party,
        auth_method=args.auth_method,
        jwks=jwks,
        client_id=args.client_id,
    )
    result = {"client_id": new.client.client_id, "client_secret": new.client_secret}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"client_id:     {result['client_id']}")
        if new.client_secret:
            print(f"client_secret: {new.client_secret}  (shown once: store it now)")
    return 0


def cmd_users_create(args: argparse.Namespace, app: Flask) -> int:
    from idp.users import create_user

    user = create_user(args.email, args.password, args.name, email_verified=args.email_verified)
    print(f"idp: created user {user.email} (sub {user.sub})")
    return 0


def cmd_users_send_reset(args: argparse.Namespace, app: Flask) -> int:
    from idp.admin.people import send_reset_email

    user = _person_by_email(args.email)
    portal = _portal_by_slug(args.portal) if args.portal else None
    send_reset_email(user, portal, actor_label=f"cli:{_operator()}")
    print(f"idp: reset email for {user.email} queued (`idp worker` sends it)")
    return 0


def cmd_users_reset_mfa(args: argparse.Namespace, app: Flask) -> int:
    from idp.admin.people import reset_person_mfa

    user = _person_by_email(args.email)
    reset_person_mfa(user, args.reason, actor_label=f"cli:{_operator()}")
    print(f"idp: MFA of {user.email} reset; they set it up again at their next sign-in "
          "(`idp worker` sends them an email)")
    return 0


def _person_by_email(email: str) -> User:
    from idp.db import db
    from idp.models import User
    from idp.models.user import normalise_email

    address = normalise_email(email)
    user = db.session.execute(db.select(User).filter_by(email=address)).scalar_one_or_none()
    if user is None:
        raise CliError(f"email: no person with email {address!r}")
    return user


def _operator() -> str:
    """The operator's login name, for the audit log."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in this environment
        return "unknown"


def cmd_admins_grant(args: argparse.Namespace, app: Flask) -> int:
    from idp.admin.access import grant_role

    grant_role(args.email, args.role, args.portal)
    print(f"idp: {args.email} is {args.role}" + (f" of {args.portal}" if args.portal else ""))
    return 0


def cmd_admins_revoke(args: argparse.Namespace, app: Flask) -> int:
    from idp.admin.access import revoke_role

    if not revoke_role(args.email, args.role, args.portal):
        raise CliError(f"{args.email} does not have that role")
    print(f"idp: {args.email} is no longer {args.role}")
    return 0


def cmd_admins_list(args: argparse.Namespace, app: Flask) -> int:
    from idp.db import db
    from idp.models import AdminRole

    rows = db.session.execute(db.select(AdminRole).order_by(AdminRole.id)).scalars()
    for row in rows:
        portal = f" {row.portal.slug}" if row.portal else ""
        print(f"{row.user.email} {row.role}{portal}")
    return 0


def cmd_portals_create(args: argparse.Namespace, app: Flask) -> int:
    from idp.portals import create_portal

    portal = create_portal(args.slug, args.name)
    print(f"idp: created portal {portal.slug}")
    return 0


def cmd_portals_set(args: argparse.Namespace, app: Flask) -> int:
    from idp.portals import update_portal

    changes = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"expected KEY=VALUE, got {item!r}")
        changes[key.strip()] = value
    portal = update_portal(args.slug, changes)
    print(f"idp: portal {portal.slug} updated: {', '.join(sorted(changes))}")
    return 0


def cmd_contacts_import(args: argparse.Namespace, app: Flask) -> int:
    """Good rows are saved; each rejected row is one line on stderr and the exit is 1."""
    from idp.contacts import import_contacts_file

    report = import_contacts_file(args.file, args.portal)
    for error in report.errors:
        print(f"idp: {args.file}: {error}", file=sys.stderr)
    print(f"idp: contacts of portal {args.portal}: {report.summary}")
    return 1 if report.errors else 0


def cmd_users_import(args: argparse.Namespace, app: Flask) -> int:
    """Good rows are saved; each rejected row is one line on stderr and the exit is 1."""
    from idp.legacy.importer import import_legacy_file

    report = import_legacy_file(args.file, args.portal)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for warning in report.warnings:
            print(f"idp: {args.file}: {warning} (warning)")
        print(f"idp: legacy accounts of portal {args.portal}: {report.summary}")
    for error in report.errors:
        print(f"idp: {args.file}: {error}", file=sys.stderr)
    return 1 if report.errors else 0


def cmd_users_legacy_status(args: argparse.Namespace, app: Flask) -> int:
    from idp.legacy.accounts import export_pending, legacy_status

    portal = _portal_by_slug(args.portal)
    status = legacy_status(portal)
    exported = None
    if args.export_pending:
        try:
            with open(args.export_pending, "w", encoding="utf-8", newline="") as out:
                exported = export_pending(portal, out)
        except OSError as exc:
            raise CliError(f"--export-pending: {args.export_pending}: "
                           f"{exc.strerror or exc}") from None
    if args.json:
        print(json.dumps({**status.as_dict(), "exported": exported}))
        return 0
    print(f"legacy accounts of {portal.slug}:\t{status.total}")
    print(f"migrated:\t{status.migrated} (of which linked into an existing account: "
          f"{status.linked})")
    print(f"pending:\t{status.pending} (without a password: {status.without_password})")
    print(f"retired:\t{status.retired}"
          + ("  (legacy usernames retired for the portal)" if status.usernames_retired else ""))
    if exported is not None:
        print(f"idp: {exported} pending account(s) written to {args.export_pending} "
              f"(send them with `idp invitations bulk {args.export_pending} "
              f"--portal {portal.slug}`)")
    return 0


def _portal_by_slug(slug: str) -> Portal:
    from idp.db import db
    from idp.models import Portal

    portal = db.session.execute(db.select(Portal).filter_by(slug=slug)).scalar_one_or_none()
    if portal is None:
        raise CliError(f"portal: no portal with slug {slug!r}")
    return portal


def _read_text(path: str, option: str) -> str:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            return handle.read()
    except OSError as exc:
        raise CliError(f"{option}: {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"{option}: {path}: not UTF-8 text") from None


def cmd_invitations_send(args: argparse.Namespace, app: Flask) -> int:
    from idp.invitations import send_invitation

    portal = _portal_by_slug(args.portal)
    message = _read_text(args.message_file, "--message-file") if args.message_file else None
    invitation = send_invitation(portal, args.email, args.name, args.contact_id, message)
    print(f"idp: invitation to {portal.slug} sent to {invitation.email} "
          f"(status {invitation.status}; `idp worker` delivers it)")
    return 0


def cmd_invitations_bulk(args: argparse.Namespace, app: Flask) -> int:
    """Every row is reported; the exit is 1 when a row failed (skipped rows are expected)."""
    from idp.invitations import bulk_invite, read_invitation_csv

    portal = _portal_by_slug(args.portal)
    template = _read_text(args.template_file, "--template-file") if args.template_file else None
    rows = read_invitation_csv(_read_text(args.file, "FILE.csv"))
    result = bulk_invite(portal, rows, template)
    totals = result.totals
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        for row in result.rows:
            reason = f": {row.reason}" if row.reason else ""
            print(f"row {row.row}\t{row.email or '-'}\t{row.outcome}{reason}")
        print(f"idp: invitations to {portal.slug}: {totals['sent']} sent, "
              f"{totals['skipped']} skipped, {totals['failed']} failed")
    if totals["failed"]:
        print(f"idp: error: {totals['failed']} row(s) failed (see the report)", file=sys.stderr)
        return 1
    return 0


def cmd_invitations_list(args: argparse.Namespace, app: Flask) -> int:
    from idp.invitations import list_invitations

    portal = _portal_by_slug(args.portal)
    invitations = list_invitations(portal, args.status)

    def day(moment: Any) -> str:
        return f"{moment:%Y-%m-%d %H:%M}" if moment is not None else "-"

    if args.json:
        print(json.dumps([
            {"email": i.email, "name": i.name, "contact_id": i.contact_external_id,
             "status": i.status, "sent_at": day(i.sent_at), "opened_at": day(i.opened_at),
             "accepted_at": day(i.accepted_at), "resent_count": i.resent_count}
            for i in invitations
        ]))
        return 0
    print("email\tstatus\tsent (UTC)\topened\taccepted\tresent")
    for i in invitations:
        print(f"{i.email}\t{i.status}\t{day(i.sent_at)}\t{day(i.opened_at)}\t"
              f"{day(i.accepted_at)}\t{i.resent_count}")
    return 0


def cmd_invitations_resend(args: argparse.Namespace, app: Flask) -> int:
    from idp.invitations import find_invitation, resend_invitation

    portal = _portal_by_slug(args.portal)
    invitation = find_invitation(portal, args.email)
    if invitation is None:
        raise CliError(f"email: no invitation for {args.email.strip()!r} at portal {portal.slug}")
    resend_invitation(invitation)
    print(f"idp: invitation to {portal.slug} resent to {invitation.email} (new link; the "
          "previous one no longer works)")
    return 0


def cmd_keys_rotate_encryption(args: argparse.Namespace, app: Flask) -> int:
    from idp.security.key_rotation import reencrypt_stored_secrets

    keys = app.extensions["idp"].settings.security.encryption_keys
    report = reencrypt_stored_secrets(app.extensions["idp"].encryptor)
    print(f"idp: re-encrypted {report.reencrypted} stored secret(s) under the first "
          f"encryption key; {report.current} already were")
    if len(keys) > 1:
        print("idp: the other keys decrypt nothing now: remove them from "
              "security.encryption_keys and deploy")
    return 0


def cmd_keys_rotate(args: argparse.Namespace, app: Flask) -> int:
    algs = tuple(args.algs) if args.algs else ("RS256", "ES256")
    kids = app.extensions["idp"].keys.rotate(algs)
    print(f"idp: new signing keys {', '.join(kids)}; previous keys stay published until "
          "the tokens they signed expire")
    return 0


def cmd_generate_encryption_key(args: argparse.Namespace) -> int:
    from idp.security.encryption import generate_encryption_key

    print(generate_encryption_key())
    return 0


def _seed_demo() -> None:
    """The demo portals, clients and people of `make run` (idempotent; see idp/demo.py)."""
    from idp.demo import PORTALS, seed_demo

    accounts = seed_demo()
    for portal in PORTALS:
        print(f"idp: demo portal {portal.name} at {portal.base_url} "
              f"(client {portal.client_id} / {portal.client_secret})")
    for account in accounts:
        password = f" / {account.password}" if account.password else ""
        print(f"idp: demo account ({account.portal}) {account.login}{password}: {account.note}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


