from django.urls import path

from agents_app.views import clients, enrollment

app_name = "agents"

urlpatterns = [
    path("", clients.client_management, name="client-management"),
    path("domains/<int:pk>/children/", clients.domain_children, name="domain-children"),
    path("privileges/", clients.privileges, name="privileges"),
    path("enrollment/", enrollment.agent_enrollment, name="enrollment"),
]
