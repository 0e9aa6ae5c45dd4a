"""HTML views of the annotations app, one module per area: ``workspace`` (the home page, projects, the
annotator's queue and the annotation workspace), ``review`` (the review queue, one output under review,
agreement, an annotator's verdicts) and ``data`` (researchers' exports and prompt imports under /data/).
The URL modules (``annotations/urls.py``, ``annotations/data_urls.py``) name them.
"""
