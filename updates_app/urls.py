from django.urls import path

from updates_app.views import automatic, clients, compliance, proxy, rollback, rollouts, runs, schedule

app_name = "updates"

urlpatterns = [
    path("automatic/", automatic.automatic_update, name="automatic-update"),
    path("automatic/preview/", schedule.schedule_preview_fragment, name="schedule-preview"),
    path("automatic/staged-rollout/", rollouts.rollout_policy_save_view, name="staged-rollout-save"),
    path("rollouts/<int:pk>/<slug:action>/", rollouts.rollout_action, name="rollout-action"),
    path("manual/", runs.manual_update, name="manual-update"),
    path("summary/", runs.summary, name="summary"),
    path("rollback/", rollback.rollback, name="rollback"),
    path("runs/progress/", runs.run_progress, name="run-progress"),
    path("runs/<int:pk>/", runs.run_detail, name="run-detail"),
    path("runs/<int:pk>/cancel/", runs.run_cancel_view, name="run-cancel"),
    path("clients/", clients.client_list, name="clients"),
    path("clients/<int:pk>/", clients.client_detail, name="client-detail"),
    path("clients/<int:pk>/deliveries/", runs.client_history, name="client-deliveries"),
    path("compliance/clients/", compliance.compliance_clients, name="compliance-clients"),
    path("schedule/late/", schedule.late_clients_page, name="late-clients"),
    path("proxy/", proxy.proxy_settings, name="proxy-settings"),
]
