"""The Content-Security-Policy report endpoint: browsers POST what the policy blocked; it is logged."""

from __future__ import annotations

import json
import logging

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

logger = logging.getLogger("text2grad.csp")
MAX_REPORT_BYTES = 16 * 1024


@csrf_exempt  # browsers send reports without a CSRF token; nothing is changed but the log
@require_POST
def csp_report(request: HttpRequest) -> HttpResponse:
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_REPORT_BYTES:
        return HttpResponse(status=413)
    try:
        report = json.loads(request.body or b"{}")
    except (ValueError, RecursionError):
        return HttpResponse("Not a JSON report.", status=400, content_type="text/plain")
    body = report.get("csp-report", report) if isinstance(report, dict) else {}
    if not isinstance(body, dict):
        body = {}
    logger.warning(
        "CSP violation: %s blocked %s on %s",
        str(body.get("violated-directive") or body.get("effective-directive") or "?")[:200],
        str(body.get("blocked-uri") or "?")[:500],
        str(body.get("document-uri") or "?")[:500],
    )
    return HttpResponse(status=204)
