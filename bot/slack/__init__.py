"""Slack layer: routing only (DESIGN.md §2, §9).

- :func:`build_app`: the Bolt app for ``/k8snet help | status [cluster] | clusters |
  runbooks | run | approve | reject | history | show | rollback``, the Approve / Reject
  buttons and the runbook parameters modal.
- :func:`make_wsgi_app`: WSGI app with ``/slack/events``, ``/healthz`` and ``/readyz``.
- :func:`serve`: ``k8snet serve`` in HTTP mode (waitress) or Socket Mode.

May import ``bot.engine``, ``bot.render``, ``bot.sdk`` and ``bot.settings``; never
``bot.adapters``, ``bot.wiring``, ``bot.cli`` or ``bot.scheduling``.
"""

from bot.slack.app import build_app
from bot.slack.server import make_wsgi_app, serve

__all__ = ["build_app", "make_wsgi_app", "serve"]
