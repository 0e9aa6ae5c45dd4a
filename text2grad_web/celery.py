"""The Celery app. Workers import the Django project; tasks live in each app's ``tasks.py``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "text2grad_web.settings")

app = Celery("text2grad_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
