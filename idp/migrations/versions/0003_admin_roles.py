"""Admin roles: who may use the console, as admin, support or portal_admin of one portal.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 02:53:05.269762
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_roles',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('portal_id', sa.Integer(), nullable=True),
    sa.Column('granted_by', sa.String(length=200), nullable=False),
    sa.Column('granted_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['portal_id'], ['portals.id'], name=op.f('fk_admin_roles_portal_id_portals')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_admin_roles_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_roles')),
    # NULL portal_ids are distinct here: idp.admin.access.grant_role checks first.
    sa.UniqueConstraint('user_id', 'role', 'portal_id', name=op.f('uq_admin_roles_user_id'))
    )
    with op.batch_alter_table('admin_roles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_roles_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('admin_roles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_roles_user_id'))

    op.drop_table('admin_roles')
