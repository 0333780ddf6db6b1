"""Periodic work for the client tree (thin: each task calls one service)."""

from __future__ import annotations

from celery import shared_task

from agents_app.connection import clients_mark_offline


@shared_task(name="agents_app.tasks.mark_silent_clients_offline")
def mark_silent_clients_offline() -> int:
    return clients_mark_offline()
