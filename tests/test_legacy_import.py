"""Importing legacy accounts: idempotent, every row checked, errors reported per row."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from idp.db import db
from idp.legacy.importer import LegacyImportError, import_legacy_accounts, read_legacy_rows
from idp.models import LegacyAccount
from idp.portals import create_portal
from tests.legacy import LEGACY_PASSWORD, account, import_rows, legacy_hash, legacy_row
from tests.test_cli import assert_ok, assert_one_line_error, idp, query


@pytest.fixture
def portal(app):
    return create_portal("lakeside", "Lakeside MLS")


def accounts_of(portal) -> list[LegacyAccount]:
    db.session.expire_all()
    return list(db.session.scalars(
        db.select(LegacyAccount).filter_by(portal_id=portal.id).order_by(LegacyAccount.id)))


def test_a_file_imported_twice_changes_nothing_the_second_time(portal):
    rows = [legacy_row("jsmith", "pat@example.org", name="Pat Smith", phone="555-0101",
                       contact_id="C-1"),
            legacy_row("mjones", "", kind="salted-sha256"),
            legacy_row("nopass", "np@example.org", password=None)]
    first = import_rows(portal, *rows)
    assert (first.created, first.updated, first.unchanged, first.errors) == (3, 0, 0, [])
    assert first.without_password == 1
    before = [(a.id, a.password_hash, a.updated_at) for a in accounts_of(portal)]

    second = import_rows(portal, *rows)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 3)
    assert [(a.id, a.password_hash, a.updated_at) for a in accounts_of(portal)] == before


def test_re_importing_updates_by_username_case_insensitively(portal):
    import_rows(portal, legacy_row("JSmith", "old@example.org", name="Pat"))
    new_hash, _ = legacy_hash("md5-crypt", "a new old password")
    report = import_rows(portal, legacy_row("jsmith", "New@Example.org", name="Pat Smith",
                                            password_hash=new_hash))
    assert (report.created, report.updated) == (0, 1)
    [stored] = accounts_of(portal)
    assert (stored.legacy_username, stored.email, stored.name) == \
        ("jsmith", "new@example.org", "Pat Smith")
    assert (stored.password_hash, stored.password_scheme) == (new_hash, "md5_crypt")


def test_an_account_re_hashed_at_sign_in_keeps_its_argon2_hash_on_re_import(app, portal):
    row = legacy_row("jsmith", "pat@example.org")
    import_rows(portal, row)
    stored = account(portal, "jsmith")
    stored.password_hash = app.extensions["idp"].passwords.hash(LEGACY_PASSWORD)
    stored.password_scheme = "argon2"
    db.session.commit()
    report = import_rows(portal, row)
    assert report.unchanged == 1
    assert account(portal, "jsmith").password_scheme == "argon2"


def test_migrated_accounts_are_left_as_they_are(portal):
    from idp.clock import utcnow

    import_rows(portal, legacy_row("jsmith", "pat@example.org", name="Pat"))
    stored = account(portal, "jsmith")
    stored.migrated_at = utcnow()
    db.session.commit()
    report = import_rows(portal, legacy_row("jsmith", "other@example.org", name="Other"))
    assert report.already_migrated == 1
    assert account(portal, "jsmith").email == "pat@example.org"


def test_bad_rows_are_reported_with_their_line_and_the_rest_imported(portal):
    bcrypt_hash, _ = legacy_hash("bcrypt-2b")
    rows = [
        legacy_row("good1", "a@example.org"),
        legacy_row("", "b@example.org"),
        legacy_row("plain", "c@example.org", password_hash="tulip42"),
        legacy_row("GOOD1", "d@example.org"),
        legacy_row("salty", "e@example.org", password_hash=bcrypt_hash, salt="NaCl"),
        legacy_row("x" * 201, "f@example.org"),
        legacy_row("tab\tname", "g@example.org"),
        legacy_row("good2", "not-an-email"),
        legacy_row("nosalt", "", password=None, salt="NaCl"),
    ]
    report = import_rows(portal, *rows)
    assert [(e.row, e.message.split(":")[0]) for e in report.errors] == [
        (3, "legacy_username"), (4, "password_hash"), (5, "legacy_username"), (6, "salt"),
        (7, "legacy_username"), (8, "legacy_username"), (10, "salt")]
    assert "already appears on row 2" in report.errors[2].message
    assert "unknown hash format" in report.errors[1].message
    assert "tulip42" not in str(report.errors[1])  # a would-be password is not echoed whole
    assert [str(w) for w in report.warnings] == [
        "row 9: email: not a valid address: 'not-an-email'; imported without it"]
    assert [a.legacy_username for a in accounts_of(portal)] == ["good1", "good2"]
    assert account(portal, "good2").email is None


@pytest.mark.parametrize(("text", "fragment"), [
    pytest.param("", "the file is empty", id="empty"),
    pytest.param("username,email,hash\njsmith,a@example.org,x\n", "no legacy_username",
                 id="wrong-header"),
    pytest.param("legacy_username,email\njsmith,a@example.org\n", "no password_hash",
                 id="no-hash-column"),
])
def test_a_file_without_the_expected_header_is_refused_whole(portal, text, fragment):
    with pytest.raises(LegacyImportError, match=fragment):
        import_legacy_accounts(portal, read_legacy_rows(io.StringIO(text)))
    assert accounts_of(portal) == []


def test_columns_may_come_in_any_order_and_extra_ones_are_ignored(portal):
    password_hash, salt = legacy_hash("salted-sha1")
    text = ("Salt,Password_Hash,Agent,Legacy_Username,Email\n"
            f"{salt},{password_hash},Ann,jsmith,pat@example.org\n")
    report = import_legacy_accounts(portal, read_legacy_rows(io.StringIO(text)))
    assert report.created == 1
    stored = account(portal, "jsmith")
    assert (stored.password_scheme, stored.salt) == ("salted_sha1", salt)


def test_plaintext_is_never_stored(portal):
    import_rows(portal, legacy_row("jsmith", "pat@example.org"))
    stored = account(portal, "jsmith")
    assert LEGACY_PASSWORD not in (stored.password_hash or "")
    assert stored.password_source and LEGACY_PASSWORD not in stored.password_source


# -- the command line -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    instance = tmp_path_factory.mktemp("legacy-cli") / "instance"
    assert_ok(idp(instance, "init"))
    assert_ok(idp(instance, "portals", "create", "--slug", "lakeside", "--name", "Lakeside MLS"))
    return instance


@pytest.fixture
def cli_instance(tmp_path: Path, cli_template: Path) -> Path:
    copy = tmp_path / "instance"
    shutil.copytree(cli_template, copy)
    return copy


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_idp_users_import_reports_rejected_rows_on_stderr_and_exits_1(cli_instance, tmp_path):
    rows = [legacy_row("jsmith", "pat@example.org", contact_id="C-1"),
            legacy_row("broken", "b@example.org", password_hash="$9$nope"),
            legacy_row("sha", "s@example.org", kind="sha512-crypt"),
            legacy_row("invite-me", "i@example.org", password=None)]
    path = write_csv(tmp_path / "legacy.csv", rows)
    result = idp(cli_instance, "users", "import", str(path), "--portal", "lakeside")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"idp: {path}: row 3: password_hash: unknown hash format '$9$...' (accepted: bcrypt, "
        "Django or passlib PBKDF2, SHA-512/SHA-256-crypt, MD5-crypt, argon2, salted "
        "SHA-1/SHA-256 hex with a salt column)"]
    assert "3 created, 0 updated, 0 unchanged" in result.stdout
    assert "1 without a password" in result.stdout
    assert query(cli_instance, "SELECT legacy_username, password_scheme FROM legacy_accounts "
                               "ORDER BY id") == [
        ("jsmith", "bcrypt"), ("sha", "sha512_crypt"), ("invite-me", None)]

    again = idp(cli_instance, "users", "import", str(path), "--portal", "lakeside")
    assert "0 created, 0 updated, 3 unchanged" in again.stdout
    assert query(cli_instance, "SELECT count(*) FROM legacy_accounts") == [(3,)]


@pytest.mark.parametrize(("args", "fragment"), [
    pytest.param(["users", "import", "missing.csv", "--portal", "lakeside"], "no such file",
                 id="missing-file"),
    pytest.param(["users", "import", "FILE", "--portal", "nowhere"], "no portal with slug",
                 id="unknown-portal"),
    pytest.param(["users", "import", "FILE"], "--portal", id="no-portal"),
    pytest.param(["users", "legacy-status", "--portal", "nowhere"], "no portal with slug",
                 id="status-unknown-portal"),
    pytest.param(["portals", "set", "lakeside", "legacy_usernames_retired=maybe"],
                 "legacy_usernames_retired: not a valid value", id="retired-not-a-boolean"),
])
def test_legacy_commands_refuse_bad_input_with_one_line(cli_instance, tmp_path, args, fragment):
    path = write_csv(tmp_path / "ok.csv", [legacy_row("jsmith", "pat@example.org")])
    args = [str(path) if a == "FILE" else str(tmp_path / a) if a == "missing.csv" else a
            for a in args]
    assert_one_line_error(idp(cli_instance, *args), fragment)


def test_legacy_status_counts_and_exports_the_pending_accounts(cli_instance, tmp_path):
    rows = [legacy_row("jsmith", "pat@example.org", name="Pat", contact_id="C-1"),
            legacy_row("mjones", "", name="M. Jones"),
            legacy_row("invite-me", "i@example.org", password=None)]
    assert_ok(idp(cli_instance, "users", "import", str(write_csv(tmp_path / "in.csv", rows)),
                  "--portal", "lakeside"))
    export = tmp_path / "pending.csv"
    result = idp(cli_instance, "users", "legacy-status", "--portal", "lakeside",
                 "--export-pending", str(export))
    assert_ok(result)
    assert "pending:\t3 (without a password: 1)" in result.stdout
    assert "3 pending account(s) written" in result.stdout
    with open(export, encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert [(r["legacy_username"], r["email"], r["has_password"]) for r in exported] == [
        ("invite-me", "i@example.org", "no"), ("jsmith", "pat@example.org", "yes"),
        ("mjones", "", "yes")]

    # The export is a file `idp invitations bulk` takes as it is.
    bulk = idp(cli_instance, "invitations", "bulk", str(export), "--portal", "lakeside")
    assert "2 sent, 1 skipped, 0 failed" in bulk.stdout, bulk.stdout + bulk.stderr

    # The portal's switch: its usernames are retired, nothing is pending any more.
    assert_ok(idp(cli_instance, "portals", "set", "lakeside", "legacy_usernames_retired=true"))
    retired = idp(cli_instance, "users", "legacy-status", "--portal", "lakeside", "--json")
    assert_ok(retired)
    assert json.loads(retired.stdout) == {
        "portal": "lakeside", "usernames_retired": True, "total": 3, "migrated": 0,
        "linked": 0, "pending": 0, "retired": 3, "without_password": 0, "exported": None}
