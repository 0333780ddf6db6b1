from django.urls import path

from agents_app import enrollment_views, views

app_name = "agents"

urlpatterns = [
    path("", views.client_management, name="client-management"),
    path("domains/<int:pk>/children/", views.domain_children, name="domain-children"),
    path("privileges/", views.privileges, name="privileges"),
    path("enrollment/", enrollment_views.agent_enrollment, name="enrollment"),
]
