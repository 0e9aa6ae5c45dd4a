"""Run one training round in this process, with a progress bar: for scripts and GPU machines."""

import json

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Project
from text2grad.config import TrainingConfig


class Command(BaseCommand):
    help = "Launch and run a training round here (not in the worker), printing progress and the result."

    def add_arguments(self, parser):
        parser.add_argument("--project", help="Only annotations of this project (by name)")
        parser.add_argument("--mode", choices=["token", "scalar"], default="token")
        parser.add_argument("--steps", type=int, help="PPO updates (default from the config)")
        parser.add_argument("--lr", type=float, dest="learning_rate", help="Learning rate")
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--since", help="Annotations submitted at or after (ISO date)")
        parser.add_argument("--until", help="Annotations submitted at or before (ISO date)")
        parser.add_argument(
            "--review",
            choices=["submitted", "accepted", "gold"],
            default="submitted",
            help="Data by review status: every submitted annotation, accepted ones, or gold only",
        )
        parser.add_argument(
            "--origin",
            choices=["people", "machine-accepted", "all"],
            default="people",
            help="Data by who wrote it: people only, also machine critics' drafts a reviewer accepted, or all",
        )
        parser.add_argument("--min-agreement", type=float, help="Only outputs whose alpha is at least this")
        parser.add_argument(
            "--exclude-annotator",
            action="append",
            default=[],
            help="Leave out this annotator (username; repeat)",
        )
        parser.add_argument(
            "--include-undefined-agreement",
            action="store_true",
            help="With --min-agreement: keep outputs whose alpha is undefined (no variation to measure)",
        )
        parser.add_argument("--config", help="Extra config as JSON, e.g. '{\"kl_coef\": 0.05}'")
        parser.add_argument(
            "--promote", action="store_true", help="Make the new version active if the evaluation gate passes"
        )

    def handle(self, *args, **options):
        from django.contrib.auth import get_user_model
        from tqdm import tqdm

        from training import services
        from training.worker import rounds

        selection = {
            "since": options["since"],
            "until": options["until"],
            "review": options["review"],
            "origin": options["origin"],
            "min_agreement": options["min_agreement"],
            "undefined_agreement": "include" if options["include_undefined_agreement"] else "exclude",
        }
        if options["exclude_annotator"]:
            users = dict(
                get_user_model()
                .objects.filter(username__in=options["exclude_annotator"])
                .values_list("username", "pk")
            )
            unknown = sorted(set(options["exclude_annotator"]) - set(users))
            if unknown:
                raise CommandError(f"No such annotator: {', '.join(unknown)}")
            selection["exclude_annotators"] = sorted(users.values())
        if options["project"]:
            project = Project.objects.filter(name=options["project"]).first()
            if project is None:
                raise CommandError(f"No project named {options['project']!r}")
            selection["project_id"] = project.pk
        config = json.loads(options["config"]) if options["config"] else {}
        for key in ("steps", "learning_rate", "batch_size"):
            if options[key] is not None:
                config[key] = options[key]
        try:
            training_round = services.round_launch(
                mode=options["mode"],
                selection=selection,
                config=config,
                auto_promote=options["promote"],
                enqueue=False,
            )
        except (ValueError, json.JSONDecodeError) as exc:
            raise CommandError(str(exc)) from exc
        total = TrainingConfig.from_dict(training_round.config).steps
        self.stdout.write(
            f"Round {training_round.pk}: {training_round.snapshot_size} annotation(s) "
            f"({training_round.selection['review']}), {total} update(s)"
        )
        with tqdm(total=total, unit="update") as bar:

            def on_update(done: int, _total: int, metrics: dict) -> None:
                bar.n = done
                bar.set_postfix(reward=f"{metrics['mean_token_reward']:.3f}", kl=f"{metrics['kl']:.3f}")
                bar.refresh()

            status = rounds.round_run(round_id=training_round.pk, on_update=on_update)
        training_round.refresh_from_db()
        if status != "succeeded":
            raise CommandError(f"Round {training_round.pk} {status}: {training_round.error}")
        version = training_round.output_version
        self.stdout.write(
            f"Round {training_round.pk} succeeded: version {version.name}"
            + (" (active)" if version.is_active else "; promote it on the training page")
        )
        promotion = training_round.summary.get("promotion")
        if promotion and not promotion["promoted"]:
            self.stdout.write(f"Not promoted: {promotion['reason']}")
