"""Researcher pages under /data/: exports and imports."""

urlpatterns: list = []
