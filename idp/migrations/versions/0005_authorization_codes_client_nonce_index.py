"""Authorization codes indexed by (client_id, nonce) for the nonce-replay check.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 06:48:03.393234

Every authorization request with a nonce asks whether the client used it before; with
only the client_id index that read all of a busy client's kept codes. The new index
serves client_id lookups too (its first column), so the old one goes.
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index('ix_authorization_codes_client_id_nonce', ['client_id', 'nonce'],
                              unique=False)
        batch_op.drop_index(batch_op.f('ix_authorization_codes_client_id'))


def downgrade() -> None:
    with op.batch_alter_table('authorization_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_authorization_codes_client_id'), ['client_id'],
                              unique=False)
        batch_op.drop_index('ix_authorization_codes_client_id_nonce')
