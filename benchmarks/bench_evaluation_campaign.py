"""A blind pairwise campaign on the demo task: the base model against a token-mode (TEXT2GRAD) version.

1. Train: a fresh LoRA on the embedded SmolLM2 gets ``--updates`` token-mode PPO updates on synthetic news
   summaries, rewarded by the programmatic critic of ``bench_sample_efficiency.py`` (poor spans on invented
   details, good spans on kept key facts). The adapter is saved as a model version.
2. Evaluate through the app: a throwaway SQLite studio (migrated here), a news project whose prompts are
   held-out items, the two versions, and ``evaluation.services.campaign_create``; the campaign's worker
   task runs in this process (Celery eager) and samples both versions with the same settings and seeds.
3. Judge: a programmatic judge takes the pairwise leases one by one, blind, as an annotator would: the
   output with the higher critic score wins (its unsupported details cost 1 each, each kept key fact
   earns 0.5); equal scores are a tie, or "both bad" when both invent details.
4. Results: ``evaluation.selectors.campaign_results`` (Bradley–Terry with a prompt bootstrap) and the
   trained version's win rate (ties half) with a bootstrap 95% interval over prompts.

    .venv/bin/python benchmarks/bench_evaluation_campaign.py                # about 5-10 min on 2 loaded cores
    .venv/bin/python benchmarks/bench_evaluation_campaign.py --updates 2 --prompts 8   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import bench_sample_efficiency as se  # noqa: E402  (the task, its critic and the sampling helper)


def critic_score(item: dict, text: str) -> tuple[float, int]:
    spans, _, facts = se.critique(item, text)
    return sum(polarity * weight for _, _, polarity, weight in spans), facts["unsupported"]


def train(args, out_dir: Path) -> dict:
    """Token-mode PPO from the base; returns training statistics. The adapter lands in ``out_dir``."""
    import torch

    from text2grad.config import TrainingConfig
    from text2grad.engine import Sample, make_kl_controller, make_optimizer, ppo_update
    from text2grad.policy import build_policy, save_policy

    torch.set_num_threads(args.threads)
    model, tokenizer = se._load_base()
    config = TrainingConfig(
        mode="token",
        learning_rate=args.lr,
        batch_size=args.batch,
        minibatch_size=min(4, args.batch),
        ppo_epochs=2,
        lam=0.95,
        seed=args.seed,
    )
    policy = build_policy(model, config)
    optimizer = make_optimizer(policy, config)
    kl_ctl = make_kl_controller(config)
    generator = torch.Generator().manual_seed(args.seed)
    cfg = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature}
    items = se.make_items(400, seed=args.seed)
    rng = random.Random(1000 + args.seed)
    log = []
    for update in range(1, args.updates + 1):
        started = time.time()
        batch_items = rng.sample(items, args.batch)
        outs = se._sample(policy, tokenizer, batch_items, cfg, seed=args.seed * 100_003 + update)
        samples, bad = [], 0
        for item, (out,) in zip(batch_items, outs, strict=True):
            spans, _, facts = se.critique(item, out.text)
            bad += facts["unsupported"] > 0
            ids, rewards = se._token_rewards(tokenizer, out.text, spans)
            if ids:
                behaviour = out.logprobs if ids == out.response_ids else None
                samples.append(Sample(out.prompt_ids, ids, rewards, behaviour_logprobs=behaviour))
        metrics = ppo_update(policy, samples, config, kl_ctl, optimizer=optimizer, generator=generator)
        log.append({"update": update, "train_behaviour_rate": bad / args.batch, "kl": metrics["kl"]})
        print(f"update {update}: invented details in {bad}/{args.batch}, kl {metrics['kl']:.3f} "
              f"({time.time() - started:.0f}s)", flush=True)  # fmt: skip
    save_policy(policy, out_dir)
    return {"updates": log, "train_items": [i["text"] for i in items]}


def evaluate_in_the_app(args, adapter_dir: Path, var_dir: Path, train_texts: set[str]) -> dict:
    os.environ.update(
        {
            "T2G_VAR_DIR": str(var_dir),
            "T2G_BASE_MODEL": str(REPO / "var" / "models" / "base"),
            "T2G_TORCH_THREADS": str(args.threads),
            "T2G_GENERATION_BATCH": "16",
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "DJANGO_SETTINGS_MODULE": "text2grad_web.settings",
        }
    )
    os.environ.pop("DATABASE_URL", None)
    # A local tool: the development profile (the settings default to production).
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from annotations import roles
    from annotations.models import Prompt
    from annotations.services import project_create
    from evaluation import selectors, services
    from evaluation.models import EvaluationCampaign, EvaluationOutput
    from text2grad import pairwise
    from training import tasks  # noqa: F401  (registers the campaign's task for the eager run)
    from training.models import ModelVersion

    users = get_user_model()
    admin = users.objects.create_user("bench-admin")
    roles.assign_role(admin, "admin")
    judge = users.objects.create_user("bench-judge")
    roles.assign_role(judge, "annotator")
    project = project_create(name="News summaries (benchmark)", kind="summarization")
    items = se.make_items(args.prompts, seed=args.seed + 7, exclude=train_texts)  # held out from training
    by_text = {}
    for item in items:
        prompt = Prompt(project=project, text=se.PROMPT_PREFIX + item["text"])
        prompt.save()
        by_text[prompt.text] = item
    base = ModelVersion.objects.create(name="v0-base", base_model="SmolLM2-135M-Instruct", is_active=True)
    tuned = ModelVersion.objects.create(
        name=f"v1-token-{args.updates}u",
        base_model=base.base_model,
        parent=base,
        adapter_path=str(adapter_dir),
    )
    started = time.time()
    campaign = services.campaign_create(
        name="Base vs token-mode round",
        project=project,
        versions=[base, tuned],
        prompt_count=args.prompts,
        prompt_source="all",
        sampling_params={
            "temperature": args.temperature, "top_p": 1.0, "max_new_tokens": args.max_new_tokens,
        },
        seed=args.seed,
        created_by=admin,
    )  # fmt: skip
    campaign.refresh_from_db()
    if campaign.status != EvaluationCampaign.Status.JUDGING:
        raise SystemExit(f"the campaign did not open: {campaign.status} {campaign.error}")
    generation_s = time.time() - started
    scores, clusters, invented = [], [], {base.pk: 0, tuned.pk: 0}
    for output in EvaluationOutput.objects.filter(campaign=campaign):
        invented[output.model_version_id] += critic_score(by_text[output.prompt.text], output.text)[1] > 0
    while (lease := services.judgement_next(campaign=campaign, judge=judge)) is not None:
        item = by_text[lease.task.prompt.text]
        (left, left_bad), (right, right_bad) = (
            critic_score(item, lease.left.text),
            critic_score(item, lease.right.text),
        )
        if left != right:
            verdict = "a" if left > right else "b"
        else:
            verdict = "both_bad" if left_bad and right_bad else "tie"
        judgement = services.judgement_submit(judgement=lease, judge=judge, verdict=verdict)
        tuned_first = judgement.task.first.model_version_id == tuned.pk
        scores.append(judgement.first_score if tuned_first else 1.0 - judgement.first_score)
        clusters.append(judgement.task.prompt_id)
    results = selectors.campaign_results(campaign)
    rate, low, high = pairwise.bootstrap_mean(scores, clusters=clusters, n_boot=2000, seed=args.seed)
    pair = results.pairs[0]
    difference = results.difference(tuned, base)
    return {
        "prompts": args.prompts,
        "judgements": results.judgements,
        "tuned_win_rate": rate,
        "win_rate_interval": [low, high],
        "pair": {
            "first": pair.first.name,
            "first_wins": pair.first_wins,
            "second_wins": pair.second_wins,
            "ties": pair.ties,
            "both_bad": pair.both_bad,
        },  # fmt: skip
        "bt": [
            {"version": s.version.name, "score": s.theta, "interval": [s.lower, s.upper]}
            for s in results.standings
        ],
        "bt_difference_tuned_minus_base": list(difference),
        "significant": difference[1] > 0,
        "invented_details_share": {
            "base": invented[base.pk] / args.prompts,
            "tuned": invented[tuned.pk] / args.prompts,
        },  # fmt: skip
        "generation_s": generation_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="t2g-bench-eval-") as tmp:
        adapter_dir = Path(tmp) / "v1-token"
        training = train(args, adapter_dir)
        train_seconds = time.time() - started
        result = evaluate_in_the_app(args, adapter_dir, Path(tmp) / "var", set(training["train_items"]))
    result.update(
        {
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "training": training["updates"],
            "train_s": train_seconds,
            "total_s": time.time() - started,
        }
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
