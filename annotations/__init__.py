"""Agreement, review and gold (issue 14)
-------------------------------------
- **The maths** is in the core: `text2grad/agreement.py` (no Django): Krippendorff's alpha from
  coincidence matrices (nominal over characters or tokens, ordinal for ratings), pairwise span F1, and
  `batch_agreement`, which measures many outputs at once (characters of all outputs in one array, one
  `bincount` per coder pair, span pairs by one vectorised join). Tested against the `krippendorff` package.
- **Storage**: one `OutputAgreement` row per output (alpha, token alpha, span F1, a sort `score`, the
  coincidence matrices, each pair and each annotator against gold). Coincidence matrices add up, so a
  project's, a pair's, a label's or a week's alpha is computed exactly from the stored rows.
  `annotations.services.agreement_refresh(generation_ids=...)` rewrites rows; it runs on
  `annotation_submitted` (connected in `AnnotationsConfig.ready`), on gold changes, and after the worker
  stores token rewards (token alpha needs the offsets). Bulk rows go in by COPY on PostgreSQL.
- **Review**: `Review` (one verdict per annotation), gold = an `Annotation` with `is_gold` (one per output,
  never counted in `annotation_count`, never shown to annotators, `gold_origin` adjudicated / honeypot).
  Services in `annotations/services/review.py`; pages in `annotations/views/review.py` (`templates/review/`,
  `static/js/review.js`, `static/css/review.css`); reads in `annotations/selectors/review.py`; API in
  `annotations/api/review.py`. Roles: `reviewer` (admins are reviewers too), `roles.is_reviewer`.
- **Training**: `training.services.round_snapshot` selects by review status, minimum agreement and
  excluded annotators; a gold-only round's snapshot is the gold annotations, so `build_samples` trains on
  their rewards alone.

Machine critics as drafts for people (issue 27)
-----------------------------------------------
- **Configuration**: `MachineCriticConfig` (a project's registered critic, `text2grad.machine_critics`, and
  its settings), set by admins on *Project → Machine critics* or `manage.py run_machine_critic`.
- **Runs**: `MachineCriticJob` (the job framework; `annotations.machine_critic_run` on the `critics` lane):
  `annotations/services/machine.py` (web side: configure, start, cancel), `annotations/machine.py` (worker
  side: builds the critic, critiques each output, writes a submitted `Annotation` with `origin=machine`
  by the critic's inactive machine user, `critic` holding its name, version, settings, job, evidence and
  problems; spans `origin=machine`; token rewards through `annotation_submitting` like anyone's).
- **Drafts for people**: they take no person's slot (`annotation_count`), wait in the review queue,
  are left out of `OutputAgreement` (people's agreement) and compared with people in
  `selectors/machine.py` (the agreement page and API's `machine`). Rounds and critic training choose by
  `origin` (people / machine-accepted / all, `training.services.ORIGIN_CHOICES`); exports carry `origin`
  and `critic` and filter by `origin`.
"""
