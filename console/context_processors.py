from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from console.models import ServiceHeartbeat


def console(request) -> dict:
    """Worker liveness for the footer, only on pages a staff member sees."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated and user.is_staff):
        return {}

    def status():
        beat = ServiceHeartbeat.objects.filter(name="worker").values_list("seen_at", flat=True).first()
        if beat is None:
            return {"ok": False, "text": "No worker has reported yet"}
        age = timezone.now() - beat
        return {"ok": age < timedelta(minutes=3), "seen_at": beat}

    # Lazy: evaluated only if the template asks for it.
    return {"worker_status": status}
