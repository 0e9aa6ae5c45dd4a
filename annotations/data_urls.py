"""Researcher pages under /data/: exports and imports."""

from django.urls import path
from django.views.generic import RedirectView

from . import data_views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="data_export_list"), name="data_home"),
    path("exports/", data_views.export_list, name="data_export_list"),
    path("exports/<int:pk>/", data_views.export_detail, name="data_export_detail"),
    path("exports/<int:pk>/download/", data_views.export_download, name="data_export_download"),
    path("exports/<int:pk>/again/", data_views.export_again, name="data_export_again"),
    path("import/", data_views.prompt_import, name="data_import"),
    path("import/<int:pk>/", data_views.import_detail, name="data_import_detail"),
    path("import/<int:pk>/cancel/", data_views.import_cancel, name="data_import_cancel"),
]
