"""A portal's contacts: CSV import (idempotent, row-level errors), the CLI, linking rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from idp.contacts import (
    ContactImportError,
    contact_for,
    import_contacts_file,
    match_contact,
)
from idp.db import db
from idp.models import Contact
from idp.portals import create_portal
from tests.factories import make_user
from tests.test_cli import assert_ok, assert_one_line_error, idp, query

HEADER = "contact_id,email,name,phone\n"


@pytest.fixture
def portal(app):
    return create_portal("grace", "Grace Church Ministry")


def write_csv(tmp_path: Path, text: str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def stored(portal) -> dict[str, tuple]:
    db.session.expire_all()
    rows = db.session.execute(db.select(Contact).filter_by(portal_id=portal.id)).scalars()
    return {c.external_id: (c.email, c.name, c.phone, c.user_id) for c in rows}


# -- import ---------------------------------------------------------------------------------


def test_import_creates_contacts_with_normalised_emails(tmp_path, portal):
    path = write_csv(tmp_path, HEADER + "1234, Pat.Doe@Example.org ,Pat Doe,555-0101\n"
                                        "1235,,Kid Doe,\n")
    report = import_contacts_file(path, "grace")
    assert (report.created, report.updated, report.unchanged, report.errors) == (2, 0, 0, [])
    assert stored(portal) == {"1234": ("pat.doe@example.org", "Pat Doe", "555-0101", None),
                              "1235": (None, "Kid Doe", None, None)}


def test_importing_the_same_file_again_changes_nothing(tmp_path, portal):
    path = write_csv(tmp_path, HEADER + "1,a@example.org,A,\n2,b@example.org,B,\n")
    import_contacts_file(path, "grace")
    before = stored(portal)
    report = import_contacts_file(path, "grace")
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert stored(portal) == before


def test_reimport_updates_by_contact_id_and_never_duplicates(tmp_path, portal):
    import_contacts_file(write_csv(tmp_path, HEADER + "1,a@example.org,A,555\n"), "grace")
    report = import_contacts_file(
        write_csv(tmp_path, HEADER + "1,new@example.org,A Smith,\n2,b@example.org,B,\n"),
        "grace")
    assert (report.created, report.updated, report.unchanged) == (1, 1, 0)
    assert stored(portal) == {"1": ("new@example.org", "A Smith", None, None),
                              "2": ("b@example.org", "B", None, None)}


def test_the_same_contact_id_in_two_portals_is_two_contacts(tmp_path, portal):
    other = create_portal("lakeside", "Lakeside MLS")
    path = write_csv(tmp_path, HEADER + "1,a@example.org,A,\n")
    import_contacts_file(path, "grace")
    import_contacts_file(path, "lakeside")
    assert list(stored(portal)) == ["1"] and list(stored(other)) == ["1"]


def test_header_is_case_insensitive_in_any_order_with_extra_columns_and_a_bom(tmp_path, portal):
    path = tmp_path / "excel.csv"
    path.write_text("Campus,Name,EMAIL,Contact_ID\r\nNorth,Pat,pat@example.org,7\r\n",
                    encoding="utf-8-sig")
    report = import_contacts_file(path, "grace")
    assert report.created == 1 and report.errors == []
    assert stored(portal) == {"7": ("pat@example.org", "Pat", None, None)}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (",x@example.org,No Id,", "contact_id: missing"),
        ("5,not-an-email,Bad,", "email: not a valid address: 'not-an-email'"),
        ("5,two@@example.org,Bad,", "email: not a valid address: 'two@@example.org'"),
        ("1,dup@example.org,Duplicate,", "contact_id: '1' already appears on row 2"),
        ("x" * 101 + ",long@example.org,,", "contact_id: longer than 100 characters"),
        ("5,n@example.org," + "n" * 201 + ",", "name: longer than 200 characters"),
    ],
    ids=["missing-id", "bad-email", "double-at", "duplicate-id", "long-id", "long-name"],
)
def test_a_bad_row_is_reported_with_its_line_and_the_others_are_imported(
    tmp_path, portal, row, message
):
    path = write_csv(tmp_path, HEADER + "1,a@example.org,A,\n" + row + "\n3,c@example.org,C,\n")
    report = import_contacts_file(path, "grace")
    assert [str(e) for e in report.errors] == [f"row 3: {message}"]
    assert report.created == 2
    assert sorted(stored(portal)) == ["1", "3"]


def test_every_bad_row_is_reported(tmp_path, portal):
    path = write_csv(tmp_path, HEADER + "1,bad,A,\n\n,b@example.org,B,\n1,c@example.org,C,\n")
    report = import_contacts_file(path, "grace")
    assert [e.row for e in report.errors] == [2, 4]  # the blank line 3 is skipped
    assert report.created == 1 and list(stored(portal)) == ["1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("email,name\nx@example.org,X\n", "the header has no contact_id column"),
        ("id,mail\n1,x@example.org\n", "the header has no contact_id or email column"),
    ],
    ids=["empty", "no-contact-id", "wrong-header"],
)
def test_a_file_without_the_header_is_refused_as_a_whole(tmp_path, portal, text, message):
    with pytest.raises(ContactImportError, match=message):
        import_contacts_file(write_csv(tmp_path, text), "grace")
    assert stored(portal) == {}


def test_an_unknown_portal_is_refused(tmp_path, app):
    with pytest.raises(ContactImportError, match="no portal with slug 'nope'"):
        import_contacts_file(write_csv(tmp_path, HEADER), "nope")


def test_a_file_that_is_not_utf8_is_refused(tmp_path, portal):
    path = tmp_path / "latin1.csv"
    path.write_bytes((HEADER + "1,jose@example.org,José,\n").encode("latin-1"))
    with pytest.raises(ContactImportError, match="not UTF-8"):
        import_contacts_file(path, "grace")


# -- linking --------------------------------------------------------------------------------


def test_import_does_not_link_a_contact_to_an_account_with_the_same_email(tmp_path, portal):
    make_user("pat@example.org", email_verified=False)
    import_contacts_file(write_csv(tmp_path, HEADER + "1,PAT@example.org,Pat,\n"), "grace")
    assert stored(portal)["1"][3] is None


def test_an_unverified_account_is_never_linked_by_email(tmp_path, portal):
    user = make_user("pat@example.org", email_verified=False)
    import_contacts_file(write_csv(tmp_path, HEADER + "1,pat@example.org,Pat,\n"), "grace")
    assert contact_for(user, portal) is None
    assert stored(portal)["1"][3] is None


def test_a_verified_account_is_linked_to_its_contact_when_claims_are_asked(tmp_path, portal):
    user = make_user("pat@example.org", email_verified=True)
    import_contacts_file(write_csv(tmp_path, HEADER + "1234,pat@example.org,Pat,\n"), "grace")
    contact = contact_for(user, portal)
    assert contact is not None and contact.external_id == "1234"
    assert stored(portal)["1234"][3] == user.id
    assert contact.preferred_username == "pat1234"
    # A re-import that changes the contact's email keeps the link.
    import_contacts_file(write_csv(tmp_path, HEADER + "1234,pat.new@example.org,Pat,\n"),
                         "grace")
    assert stored(portal)["1234"][3] == user.id


def test_match_contact_ignores_case_and_prefers_the_same_name(portal):
    for external_id, email, name in [("1", "Family@Example.org", "Alex Rivera"),
                                     ("2", "family@example.org", "Sam Rivera"),
                                     ("3", "solo@example.org", "Solo")]:
        db.session.add(Contact(portal_id=portal.id, external_id=external_id, email=email,
                               name=name))
    db.session.commit()
    assert match_contact(portal, "SOLO@example.org", "Someone Else").external_id == "3"
    assert match_contact(portal, "family@example.org", "Sam RIVERA").external_id == "2"
    assert match_contact(portal, "family@example.org", "Jo Rivera") is None
    assert match_contact(portal, "family@example.org") is None
    assert match_contact(portal, "nobody@example.org", "Solo") is None


# -- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An initialised instance with portal `grace`, made once for the module."""
    instance = tmp_path_factory.mktemp("contacts-cli") / "instance"
    assert_ok(idp(instance, "init"))
    assert_ok(idp(instance, "portals", "create", "--slug", "grace", "--name", "Grace Church"))
    return instance


@pytest.fixture
def instance(tmp_path: Path, cli_template: Path) -> Path:
    copy = tmp_path / "instance"
    shutil.copytree(cli_template, copy)
    return copy


def test_cli_import_prints_totals_and_is_idempotent(tmp_path, instance):
    path = write_csv(tmp_path, HEADER + "1234,pat@example.org,Pat Doe,555-0101\n"
                                        "1235,sam@example.org,Sam Doe,\n")
    first = idp(instance, "contacts", "import", str(path), "--portal", "grace")
    assert_ok(first)
    assert first.stdout.strip() == ("idp: contacts of portal grace: 2 created, 0 updated, "
                                    "0 unchanged, 0 rejected")
    second = idp(instance, "contacts", "import", str(path), "--portal", "grace")
    assert_ok(second)
    assert "0 created, 0 updated, 2 unchanged, 0 rejected" in second.stdout
    assert query(instance, "SELECT external_id, email, name, phone, user_id FROM contacts "
                           "ORDER BY external_id") == [
        ("1234", "pat@example.org", "Pat Doe", "555-0101", None),
        ("1235", "sam@example.org", "Sam Doe", None, None),
    ]


def test_cli_import_reports_each_bad_row_imports_the_rest_and_exits_1(tmp_path, instance):
    path = write_csv(tmp_path, HEADER + "1,a@example.org,A,\n2,oops,B,\n,c@example.org,C,\n"
                                        "1,d@example.org,D,\n5,e@example.org,E,\n")
    result = idp(instance, "contacts", "import", str(path), "--portal", "grace")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"idp: {path}: row 3: email: not a valid address: 'oops'",
        f"idp: {path}: row 4: contact_id: missing",
        f"idp: {path}: row 5: contact_id: '1' already appears on row 2",
    ]
    assert "2 created, 0 updated, 0 unchanged, 3 rejected" in result.stdout
    assert query(instance, "SELECT external_id FROM contacts ORDER BY external_id") == [
        ("1",), ("5",)]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["contacts", "import", "{csv}", "--portal", "nope"], "no portal with slug 'nope'"),
        (["contacts", "import", "{missing}", "--portal", "grace"], "No such file"),
        (["contacts", "import", "{bad_header}", "--portal", "grace"],
         "the header has no contact_id column"),
        (["contacts", "import", "{csv}"], "--portal"),
    ],
    ids=["unknown-portal", "missing-file", "bad-header", "no-portal-option"],
)
def test_cli_bad_input_is_one_line(tmp_path, instance, args, fragment):
    files = {
        "csv": str(write_csv(tmp_path, HEADER + "1,a@example.org,A,\n")),
        "missing": str(tmp_path / "missing.csv"),
        "bad_header": str(write_csv(tmp_path, "email,name\n", "bad.csv")),
    }
    assert_one_line_error(idp(instance, *[a.format(**files) for a in args]), fragment)
    assert query(instance, "SELECT count(*) FROM contacts") == [(0,)]
