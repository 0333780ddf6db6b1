"""The delivery engine: from a run to every client's notification, retried until it lands or gives up.

- ``runs``: a run and its deliveries (event, manual, restart), superseding, cancelling.
- ``planner`` (with ``windows`` and ``spread``): Daily/Weekly windows and their spread-out deliveries.
- ``claim``: claiming due deliveries in batches, recording outcomes, releasing claims.
- ``retry``: the retry rule (15 minutes, five attempts).
- ``sender``: the notification's payload and the signed HTTP POSTs.
- ``handover``: deliveries handed to a client in its check-in answer (NAT, restart).
- ``reports``: a client's report that it updated.

Tasks that drive it live in ``updates_app.tasks``; nothing in here enqueues.
"""
