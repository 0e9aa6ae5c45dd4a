"""The audit log: one append-only row per thing a person (or the system) did that a reviewer may ask
about later. Rows are never changed or deleted: the model refuses, the admin site is read-only, and on
PostgreSQL and SQLite a trigger refuses UPDATE and DELETE (migration 0001)."""

from __future__ import annotations

from django.db import models


class AppendOnly(Exception):
    """An attempt to change or delete an audit event."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnly("Audit events are append-only")

    def delete(self):
        raise AppendOnly("Audit events are append-only")


class AuditEvent(models.Model):
    """Who did what to which object, when, from where. The actor is kept by id and name, not by foreign
    key, so deleting a user neither changes nor deletes what they did."""

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    actor_username = models.CharField(max_length=150, blank=True, help_text="Empty: the system.")
    action = models.CharField(max_length=64, db_index=True)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="audit_object")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or 'system'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnly("Audit events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnly("Audit events are append-only")
