"""Signals between the parts of the update engine.

``component_version_added`` is sent (after the transaction commits) whenever
the server "downloads" a new component version, from the command or the admin
action. The delivery engine listens and starts an event-triggered run.
"""

from django.dispatch import Signal

# Sent with: version (a ComponentVersion).
component_version_added = Signal()
