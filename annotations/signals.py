"""Signals the annotation services send, so other apps react without this app importing them.

``annotation_submitting`` is sent once per submission *inside* the submitting transaction, with
``annotation_id`` (an int); saving an output's gold annotation sends it too (its spans changed). Receivers
record the work the submission needs (``jobs.dispatch.enqueue`` writes an outbox row in that transaction),
so the submission and its follow-up work commit together; they must not do slow work or talk to the
network. The reward pipeline connects to it::

    from annotations.signals import annotation_submitting
    from jobs import dispatch

    def _enqueue(sender, annotation_id: int, **kwargs):
        dispatch.enqueue("training.compute_rewards", annotation_id)

    annotation_submitting.connect(_enqueue, dispatch_uid="t2g_rewards_on_submit")

``annotation_submitted`` is sent after the transaction commits (notifications that may be lost).
"""

from django.dispatch import Signal

annotation_submitting = Signal()
annotation_submitted = Signal()
