"""Signals the annotation services send, so other apps react without this app importing them.

``annotation_submitted`` is sent once per submission, after the submitting transaction commits, with
``annotation_id`` (an int). The reward pipeline connects to it to enqueue token-reward computation::

    from annotations.signals import annotation_submitted

    def _enqueue(sender, annotation_id: int, **kwargs):
        compute_rewards.delay(annotation_id)

    annotation_submitted.connect(_enqueue, dispatch_uid="t2g_rewards_on_submit")
"""

from django.dispatch import Signal

annotation_submitted = Signal()
