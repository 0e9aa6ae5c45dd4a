"""REST API for evaluation campaigns: researchers read results, admins create campaigns."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from annotations.api import ID_REGEX, NewestFirstPagination, ResearcherReadAdminWrite

from . import selectors, serializers, services
from .models import EvaluationCampaign


class CampaignViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Evaluation campaigns: blind pairwise judgements between model versions on a frozen prompt set."""

    permission_classes = [ResearcherReadAdminWrite]
    pagination_class = NewestFirstPagination
    lookup_value_regex = ID_REGEX
    queryset = EvaluationCampaign.objects.prefetch_related("versions", "prompts", "judges")

    def get_serializer_class(self):
        if self.action == "create":
            return serializers.CampaignCreateSerializer
        if self.action == "results":
            return serializers.ResultsSerializer
        return serializers.CampaignSerializer

    @extend_schema(
        request=serializers.CampaignCreateSerializer, responses={201: serializers.CampaignSerializer}
    )
    def create(self, request, *args, **kwargs):
        """Create a campaign (admins): the generation worker writes every version's outputs."""
        incoming = serializers.CampaignCreateSerializer(data=request.data)
        incoming.is_valid(raise_exception=True)
        data = incoming.validated_data
        judges = list(get_user_model().objects.filter(pk__in=data.get("judges", [])))
        if len(judges) != len(set(data.get("judges", []))):
            raise ValidationError({"judges": ["Unknown user id."]})
        try:
            campaign = services.campaign_create(
                name=data["name"],
                project=data["project"],
                versions=data["versions"],
                prompt_count=data["prompt_count"],
                prompt_source=data["prompt_source"],
                prompt_ids=data.get("prompt_ids"),
                judgements_per_pair=data["judgements_per_pair"],
                judges=judges,
                sampling_params=data.get("sampling_params"),
                seed=data["seed"],
                created_by=request.user,
            )
        except DjangoValidationError as exc:
            raise ValidationError({"detail": exc.messages}) from exc
        return Response(serializers.CampaignSerializer(campaign).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={
            200: serializers.CampaignSerializer,
            409: OpenApiResponse(description="Neither generating nor being judged"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stop the campaign (admins). While its outputs are being written, as the page's Cancel: a queued
        generation ends at once, a running one at its next chunk, and the campaign ends failed with the
        outputs written so far (``resume`` continues after them). While it is judged, as the page's Close:
        open leases lapse, the results so far stay."""
        generating = self.get_object().status == EvaluationCampaign.Status.GENERATING
        return self._transition(services.campaign_cancel if generating else services.campaign_close)

    @extend_schema(
        request=None,
        responses={200: serializers.CampaignSerializer, 409: OpenApiResponse(description="Not failed")},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Queue a failed campaign's generation again (admins); it resumes after the outputs written."""
        return self._transition(services.campaign_retry)

    def _transition(self, service) -> Response:
        try:
            campaign = service(campaign=self.get_object())
        except DjangoValidationError as exc:
            return Response({"detail": " ".join(exc.messages)}, status=status.HTTP_409_CONFLICT)
        return Response(serializers.CampaignSerializer(campaign).data)

    @extend_schema(responses={200: serializers.ResultsSerializer})
    @action(detail=True, methods=["get"])
    def results(self, request, pk=None):
        """Pair counts, win-rate matrix, Bradley–Terry scores with prompt-bootstrap 95% intervals, metrics."""
        campaign = self.get_object()
        results = selectors.campaign_results(campaign)
        data = {
            "campaign": campaign.pk,
            "judgements": results.judgements,
            "standings": results.standings,
            "pairs": results.pairs,
            "win_rate_matrix": [cells for _, cells in results.matrix],
            "versions": [v.pk for v in results.versions],
            "metrics": selectors.version_metrics(campaign),
        }
        return Response(serializers.ResultsSerializer(data).data)

    @extend_schema(
        responses={
            200: OpenApiResponse(OpenApiTypes.BINARY, description="JSON lines: prompt, chosen, rejected")
        }
    )
    @action(detail=True, methods=["get"])
    def preferences(self, request, pk=None):
        """Decisive judgements as a TRL DPO preference dataset (conversational prompt/chosen/rejected)."""
        campaign = self.get_object()
        lines = (json.dumps(row, ensure_ascii=False) + "\n" for row in selectors.preference_rows(campaign))
        response = StreamingHttpResponse(lines, content_type="application/jsonl; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-preferences.jsonl"'
        return response
