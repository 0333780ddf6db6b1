from django.urls import path

from updates_app import automatic_views, run_views, views_schedule

app_name = "updates"

urlpatterns = [
    path("automatic/", automatic_views.automatic_update, name="automatic-update"),
    path("manual/", run_views.manual_update, name="manual-update"),
    path("summary/", run_views.summary, name="summary"),
    path("runs/progress/", run_views.run_progress, name="run-progress"),
    path("runs/<int:pk>/", run_views.run_detail, name="run-detail"),
    path("runs/<int:pk>/cancel/", run_views.run_cancel_view, name="run-cancel"),
    path("clients/<int:pk>/deliveries/", run_views.client_history, name="client-deliveries"),
]

# Schedule-based update (issue 7): the load preview fragment and late clients.
urlpatterns += [
    path("automatic/preview/", views_schedule.schedule_preview_fragment, name="schedule-preview"),
    path("schedule/late/", views_schedule.late_clients_page, name="late-clients"),
]
