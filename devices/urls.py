from django.urls import path

from devices import views

app_name = "devices"

urlpatterns = [path("status", views.bridge_status, name="bridge-status")]
