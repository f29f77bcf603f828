"""The leader's tasks on the workers' Celery app.

``workers.app`` names this module in its ``imports`` setting, so Celery imports it when a worker
(or beat) starts; the worker layer never imports the ceremonies.
"""

from __future__ import annotations

from ceremonies.tasks import register
from workers.app import app, process_ledger

register(app, process_ledger)
