"""Reads for evaluation campaigns: pair tables, Bradley–Terry standings, drill-downs, metrics, exports."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Exists, OuterRef, QuerySet

from annotations.models import Annotation, Generation, Prompt, Span, held_out_q
from text2grad import pairwise

from .models import EvaluationCampaign, EvaluationOutput, PairwiseJudgement, PairwiseTask

N_BOOT = 1000
LEVEL = 0.95


def campaigns_visible(user) -> QuerySet[EvaluationCampaign]:
    return EvaluationCampaign.objects.select_related("project", "created_by").prefetch_related("versions")


def submitted_judgements(campaign: EvaluationCampaign) -> QuerySet[PairwiseJudgement]:
    return (
        PairwiseJudgement.objects.filter(task__campaign=campaign, status=PairwiseJudgement.Status.SUBMITTED)
        .select_related("task__first", "task__second", "task__prompt")
        .order_by("id")
    )


@dataclass
class PairRow:
    first: object
    second: object
    first_wins: int = 0
    second_wins: int = 0
    ties: int = 0
    both_bad: int = 0

    @property
    def total(self) -> int:
        return self.first_wins + self.second_wins + self.ties + self.both_bad

    @property
    def first_win_rate(self) -> float | None:
        """Ties and "both bad" count half: the Bradley–Terry convention."""
        if not self.total:
            return None
        return (self.first_wins + 0.5 * (self.ties + self.both_bad)) / self.total


@dataclass
class Standing:
    version: object
    theta: float
    lower: float
    upper: float
    rank: int
    judgements: int


@dataclass
class Results:
    campaign: EvaluationCampaign
    versions: list
    pairs: list[PairRow]
    matrix: list[tuple[object, list[float | None]]]
    standings: list[Standing] = field(default_factory=list)
    judgements: int = 0
    left_wins: int = 0  # position bias check: verdicts for the left output among decisive ones
    decisive: int = 0
    fit: pairwise.BootstrapFit | None = None

    def difference(self, better, worse) -> tuple[float, float, float] | None:
        if self.fit is None:
            return None
        index = {v.pk: i for i, v in enumerate(self.versions)}
        return self.fit.difference(index[better.pk], index[worse.pk])


def campaign_results(campaign: EvaluationCampaign, *, n_boot: int = N_BOOT) -> Results:
    """Pair counts, the win-rate matrix and Bradley–Terry standings with prompt-clustered bootstrap
    intervals (seeded by the campaign's seed, so a page shows the same numbers every time)."""
    versions = list(campaign.versions.order_by("id"))
    index = {v.pk: i for i, v in enumerate(versions)}
    pairs = {
        (a.pk, b.pk): PairRow(first=a, second=b) for i, a in enumerate(versions) for b in versions[i + 1 :]
    }
    triples, clusters = [], []
    left_wins = decisive = 0
    for judgement in submitted_judgements(campaign):
        task = judgement.task
        row = pairs[(task.first.model_version_id, task.second.model_version_id)]
        score = judgement.first_score
        if judgement.verdict == PairwiseJudgement.Verdict.BOTH_BAD:
            row.both_bad += 1
        elif judgement.verdict == PairwiseJudgement.Verdict.TIE:
            row.ties += 1
        elif score == 1.0:
            row.first_wins += 1
        else:
            row.second_wins += 1
        if judgement.verdict in (PairwiseJudgement.Verdict.A, PairwiseJudgement.Verdict.B):
            decisive += 1
            left_wins += judgement.verdict == PairwiseJudgement.Verdict.A
        triples.append((index[task.first.model_version_id], index[task.second.model_version_id], score))
        clusters.append(task.prompt_id)
    rate = defaultdict(lambda: None)
    for row in pairs.values():
        if row.total:
            rate[(row.first.pk, row.second.pk)] = row.first_win_rate
            rate[(row.second.pk, row.first.pk)] = 1.0 - row.first_win_rate
    matrix = [(v, [None if v == w else rate[(v.pk, w.pk)] for w in versions]) for v in versions]
    results = Results(
        campaign=campaign,
        versions=versions,
        pairs=list(pairs.values()),
        matrix=matrix,
        judgements=len(triples),
        left_wins=left_wins,
        decisive=decisive,
    )
    if triples:
        fit = pairwise.bootstrap_bradley_terry(
            triples, n_items=len(versions), clusters=clusters, n_boot=n_boot, level=LEVEL, seed=campaign.seed
        )
        order = sorted(range(len(versions)), key=lambda i: -fit.theta[i])
        counts = defaultdict(int)
        for i, j, _ in triples:
            counts[i] += 1
            counts[j] += 1
        results.fit = fit
        results.standings = [
            Standing(
                version=versions[i],
                theta=float(fit.theta[i]),
                lower=float(fit.lower[i]),
                upper=float(fit.upper[i]),
                rank=rank,
                judgements=counts[i],
            )
            for rank, i in enumerate(order, start=1)
        ]
    return results


# --- per prompt ----------------------------------------------------------------------------------
def held_out_prompt_ids(campaign: EvaluationCampaign) -> set[int]:
    """The campaign's prompts that are in their project's held-out set now (never trained on by rounds)."""
    return set(campaign.prompts.filter(held_out_q()).values_list("pk", flat=True))


def prompt_rows(campaign: EvaluationCampaign) -> list[dict]:
    """Per prompt: judgements and each version's score there (wins + half ties over its judgements)."""
    by_prompt: dict[int, dict] = {}
    for prompt in campaign.prompts.order_by("id"):
        by_prompt[prompt.pk] = {"prompt": prompt, "judgements": 0, "scores": defaultdict(list)}
    for judgement in submitted_judgements(campaign):
        row = by_prompt[judgement.task.prompt_id]
        row["judgements"] += 1
        score = judgement.first_score
        row["scores"][judgement.task.first.model_version_id].append(score)
        row["scores"][judgement.task.second.model_version_id].append(1.0 - score)
    versions = list(campaign.versions.order_by("id"))
    for row in by_prompt.values():
        row["by_version"] = [(sum(s) / len(s)) if (s := row["scores"].get(v.pk)) else None for v in versions]
    return list(by_prompt.values())


def prompt_detail(campaign: EvaluationCampaign, prompt: Prompt) -> dict:
    outputs = list(
        EvaluationOutput.objects.filter(campaign=campaign, prompt=prompt)
        .select_related("model_version")
        .order_by("model_version_id")
    )
    judgements = list(
        submitted_judgements(campaign)
        .filter(task__prompt=prompt)
        .select_related("task__first__model_version", "task__second__model_version", "judge")
    )
    return {"outputs": outputs, "judgements": judgements}


# --- automatic metrics ---------------------------------------------------------------------------
def _negative_polarities(project) -> list[int]:
    """Span polarities the project's reward scheme turns into negative token rewards (poor: -1 by
    default; a scheme may weigh either side negative)."""
    scheme = project.reward_scheme or {}
    weights = {-1: float(scheme.get("poor", -1.0)), 1: float(scheme.get("good", 1.0))}
    return [polarity for polarity, weight in weights.items() if weight < 0]


def version_metrics(campaign: EvaluationCampaign) -> list[dict]:
    """Per version on the campaign's prompts: output length, truncation, unit-test pass rate (code
    projects) and the share of its annotated outputs the reward scheme flags (a span with a negative
    reward), counted over the version's ordinary outputs on those prompts that have spans."""
    negative = _negative_polarities(campaign.project)
    prompt_ids = list(campaign.prompts.values_list("pk", flat=True))
    rows = []
    for version in campaign.versions.order_by("id"):
        outputs = list(EvaluationOutput.objects.filter(campaign=campaign, model_version=version))
        tested = [o.tests_passed for o in outputs if o.tests_passed is not None]
        with_spans = Generation.objects.filter(
            prompt_id__in=prompt_ids,
            model_version=version,
            annotations__status=Annotation.Status.SUBMITTED,
            annotations__spans__isnull=False,
        ).distinct()
        flagged = with_spans.filter(
            Exists(
                Span.objects.filter(
                    annotation__generation=OuterRef("pk"),
                    annotation__status=Annotation.Status.SUBMITTED,
                    polarity__in=negative,
                )
            )
        )
        annotated = with_spans.count()
        rows.append(
            {
                "version": version,
                "outputs": len(outputs),
                "mean_chars": sum(len(o.text) for o in outputs) / len(outputs) if outputs else None,
                "mean_tokens": sum(o.response_tokens for o in outputs) / len(outputs) if outputs else None,
                "truncated": sum(o.finish_reason == "length" for o in outputs) / len(outputs)
                if outputs
                else None,
                "tested": len(tested),
                "pass_rate": sum(tested) / len(tested) if tested else None,
                "annotated": annotated,
                "flagged_share": flagged.count() / annotated if annotated else None,
            }
        )
    return rows


# --- versions ------------------------------------------------------------------------------------
def _judged_campaigns_with(*versions) -> QuerySet[EvaluationCampaign]:
    campaigns = EvaluationCampaign.objects.filter(
        status__in=[EvaluationCampaign.Status.JUDGING, EvaluationCampaign.Status.CLOSED],
        tasks__judgements__status=PairwiseJudgement.Status.SUBMITTED,
    )
    for version in versions:
        campaigns = campaigns.filter(versions=version)
    return campaigns.distinct().order_by("-created_at", "-id")


def version_standings(versions) -> dict[int, dict]:
    """Each version's place in the latest judged campaign that includes it (by version id; versions never
    judged are absent). A campaign shared by several versions is fitted once."""
    fitted: dict[int, Results] = {}
    standings = {}
    for version in versions:
        campaign = _judged_campaigns_with(version).first()
        if campaign is None:
            continue
        if campaign.pk not in fitted:
            fitted[campaign.pk] = campaign_results(campaign)
        results = fitted[campaign.pk]
        standing = next(s for s in results.standings if s.version.pk == version.pk)
        standings[version.pk] = {"campaign": campaign, "standing": standing, "of": len(results.versions)}
    return standings


def promotion_evidence(candidate, active) -> dict:
    """Is ``candidate`` significantly better than ``active``? From the latest judged campaign with both:
    the bootstrap interval of their Bradley–Terry difference must lie above 0, and their head-to-head
    decisive judgements must pass a two-sided sign test at 5% (the percentile bootstrap alone calls
    3 wins out of 3 certain)."""
    if active is None or candidate.pk == active.pk:
        return {"significant": True, "campaign": None, "reason": "There is no other active version."}
    campaign = _judged_campaigns_with(candidate, active).first()
    if campaign is None:
        return {
            "significant": False,
            "campaign": None,
            "reason": f"No judged evaluation campaign compares {candidate.name} with {active.name}.",
        }
    results = campaign_results(campaign)
    difference, low, high = results.difference(candidate, active)
    row = next(p for p in results.pairs if {p.first.pk, p.second.pk} == {candidate.pk, active.pk})
    wins, losses = (
        (row.first_wins, row.second_wins)
        if row.first.pk == candidate.pk
        else (row.second_wins, row.first_wins)
    )
    p_value = pairwise.sign_test(wins, losses)
    significant = low > 0 and wins > losses and p_value < 1.0 - LEVEL
    verdict = "significantly better than" if significant else "not significantly better than"
    return {
        "significant": significant,
        "campaign": campaign,
        "difference": difference,
        "lower": low,
        "upper": high,
        "wins": wins,
        "losses": losses,
        "p_value": p_value,
        "reason": f"In campaign “{campaign.name}”, {candidate.name} is {verdict} {active.name}: "
        f"Bradley–Terry difference {difference:+.2f} (95% interval {low:+.2f} to {high:+.2f}); "
        f"head to head {wins} wins, {losses} losses (sign test p = {p_value:.3g}).",
    }


# --- export --------------------------------------------------------------------------------------
def preference_rows(campaign: EvaluationCampaign):
    """Decisive judgements as TRL's conversational preference format (prompt, chosen, rejected), with
    lineage columns; ties and "both bad" carry no preference and are left out."""
    judgements = (
        submitted_judgements(campaign)
        .filter(verdict__in=[PairwiseJudgement.Verdict.A, PairwiseJudgement.Verdict.B])
        .select_related("task__prompt__project", "task__first__model_version", "task__second__model_version")
    )
    for judgement in judgements.iterator(chunk_size=500):
        chosen = judgement.chosen
        rejected = judgement.task.second if chosen.pk == judgement.task.first_id else judgement.task.first
        yield {
            "prompt": judgement.task.prompt.chat_messages(),
            "chosen": [{"role": "assistant", "content": chosen.text}],
            "rejected": [{"role": "assistant", "content": rejected.text}],
            "prompt_id": judgement.task.prompt_id,
            "chosen_version": chosen.model_version.name,
            "rejected_version": rejected.model_version.name,
            "campaign_id": campaign.pk,
            "judgement_id": judgement.pk,
            "reason": judgement.reason,
        }


def judge_progress(campaign: EvaluationCampaign, judge) -> dict:
    done = PairwiseJudgement.objects.filter(
        task__campaign=campaign, judge=judge, status=PairwiseJudgement.Status.SUBMITTED
    ).count()
    total_tasks = PairwiseTask.objects.filter(campaign=campaign).count()
    return {"done": done, "tasks": total_tasks}
