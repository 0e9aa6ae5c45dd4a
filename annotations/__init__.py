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
"""
