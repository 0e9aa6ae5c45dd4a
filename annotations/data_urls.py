"""Researcher pages under /data/: exports and imports."""

from django.urls import path
from django.views.generic import RedirectView

from .views import data

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="data_export_list"), name="data_home"),
    path("exports/", data.export_list, name="data_export_list"),
    path("exports/<int:pk>/", data.export_detail, name="data_export_detail"),
    path("exports/<int:pk>/download/", data.export_download, name="data_export_download"),
    path("exports/<int:pk>/again/", data.export_again, name="data_export_again"),
    path("import/", data.prompt_import, name="data_import"),
    path("import/<int:pk>/", data.import_detail, name="data_import_detail"),
    path("import/<int:pk>/cancel/", data.import_cancel, name="data_import_cancel"),
]
