from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views
from frontend.views import board, patients

app_name = "frontend"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("hub/", board.hub_board, name="hub-board"),
    path("hospital/", board.hospital_inbox, name="hospital-inbox"),
    path("alerts/<int:alert_id>/<slug:action>", board.alert_action, name="alert-action"),
    path("me/", patients.patient_home, name="patient-home"),
    path("patients/<int:pk>/", patients.timeline, name="patient-timeline"),
    path("patients/<int:pk>/vitals.json", patients.vitals_json, name="patient-vitals"),
    path("patients/<int:pk>/thresholds", patients.edit_thresholds, name="patient-thresholds"),
    path("patients/<int:pk>/messages/", patients.send_message, name="patient-messages"),
]
