"""The SQLAlchemy handle shared by all models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Executable, MetaData, Row
from sqlalchemy.orm import DeclarativeBase

# Named constraints keep Alembic migrations portable between SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Objects stay readable after commit without a reload query each (requests are short-lived).
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})


def read_first(statement: Executable, params: Mapping[str, Any]) -> Row[Any] | None:
    """The first row of a read-only Core `statement`, on a pooled connection of its own.

    For the lookup that answers an API call (an access token at userinfo or introspection):
    the ORM session's set-up and tear-down cost more than the query itself. Never for rows
    the request goes on to change; those belong to `db.session` and its transaction.
    """
    with db.engine.connect() as connection:
        return connection.execute(statement, params).first()
