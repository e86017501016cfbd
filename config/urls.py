"""URL routing: pages, admin, the FHIR API and i18n."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("fhir/", include("fhir.urls")),
    path("api/bridge/", include("devices.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("frontend.urls")),
]
