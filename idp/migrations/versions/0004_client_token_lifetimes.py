"""Clients: their own token lifetimes, and new secrets waiting to be shown once.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 02:59:41.351251
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, no default: existing clients keep the server-wide [tokens] lifetimes.
    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('access_token_lifetime', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('refresh_token_lifetime', sa.Integer(), nullable=True))

    # The console shows a new secret once, on the page after the POST (idp.clients).
    op.create_table('client_secret_reveals',
    sa.Column('id_hash', sa.String(length=64), nullable=False),
    sa.Column('client_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('secret_encrypted', sa.Text(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_client_secret_reveals_client_id_clients')),
    sa.PrimaryKeyConstraint('id_hash', name=op.f('pk_client_secret_reveals'))
    )
    with op.batch_alter_table('client_secret_reveals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_secret_reveals_client_id'), ['client_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('client_secret_reveals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_secret_reveals_client_id'))
    op.drop_table('client_secret_reveals')

    with op.batch_alter_table('clients', schema=None) as batch_op:
        batch_op.drop_column('refresh_token_lifetime')
        batch_op.drop_column('access_token_lifetime')
