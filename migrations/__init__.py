"""Alembic migrations of the k8snet audit database (DESIGN.md §6).

Run them with ``k8snet db upgrade`` or :func:`bot.adapters.db.upgrade`; both find this
directory through the installed ``migrations`` package, so they work from a wheel. Developers
writing a new revision (after changing ``bot/adapters/db/models.py``)::

    alembic -c migrations/alembic.ini -x url=sqlite:////tmp/dev.sqlite3 upgrade head
    alembic -c migrations/alembic.ini -x url=sqlite:////tmp/dev.sqlite3 \\
        revision --autogenerate --rev-id 0002 -m "runs"

Revisions are named ``NNNN_<slug>.py`` with ``revision = "NNNN_<slug>"``; they use plain
``sqlalchemy`` types and import nothing from ``bot`` (the env imports only the models'
metadata).
"""
