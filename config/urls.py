"""URL routing: pages, admin, the FHIR API and i18n."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from oauth2_provider.views import TokenView

from fhir import smart
from frontend import audit_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("fhir/.well-known/smart-configuration", smart.smart_configuration, name="smart-config"),
    path(".well-known/smart-configuration", smart.smart_configuration),
    path("auth/token", TokenView.as_view(), name="smart-token"),
    path("access-log/", audit_views.my_access_log, name="access-log"),
    path(
        "access-log/patients/<int:pk>/", audit_views.patient_access_log, name="patient-access-log"
    ),
    path("break-glass/", audit_views.break_glass, name="break-glass"),
    path("fhir/", include("fhir.urls")),
    path("api/bridge/", include("devices.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    # Browsers ask for /favicon.ico on every page, the admin's included.
    path("favicon.ico", RedirectView.as_view(url=static("frontend/favicon.svg"), permanent=True)),
    path("", include("frontend.urls")),
]
