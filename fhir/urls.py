from django.urls import path, re_path

from fhir import api, ecg_views

app_name = "fhir"

TYPE = r"(?P<rtype>[A-Z][A-Za-z]+)"
ID = r"(?P<logical_id>[A-Za-z0-9\-\.]{1,64})"

urlpatterns = [
    path("", api.base, name="base"),
    path("metadata", api.metadata, name="metadata"),
    path("ecg/upload", ecg_views.ecg_upload, name="ecg-upload"),
    re_path(r"^ecg/(?P<sha256>[0-9a-f]{64})\.dcm$", ecg_views.ecg_download, name="ecg-download"),
    re_path(rf"^Patient/{ID}/\$everything$", api.patient_everything, name="everything"),
    re_path(rf"^{TYPE}/_search$", api.type_search, name="type-search"),
    re_path(rf"^{TYPE}/{ID}/_history/(?P<version>[0-9]+)$", api.instance_version, name="vread"),
    re_path(rf"^{TYPE}/{ID}/_history$", api.instance_history, name="history"),
    re_path(rf"^{TYPE}/{ID}$", api.instance, name="instance"),
    re_path(rf"^{TYPE}$", api.type_level, name="type"),
]
