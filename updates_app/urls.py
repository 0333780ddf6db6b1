from django.urls import path

from updates_app import views

app_name = "updates"

urlpatterns = [
    path("automatic/", views.automatic_update, name="automatic-update"),
    path("manual/", views.manual_update, name="manual-update"),
    path("summary/", views.summary, name="summary"),
]
