"""Push a model version's download folder (adapter or merged, with its card) to a Hugging Face Hub
repository. Off unless T2G_HUB_TOKEN is set."""

from django.core.management.base import BaseCommand, CommandError

from training.models import ModelDownload, ModelVersion
from training.services import downloads


class Command(BaseCommand):
    help = "Upload a version's adapter or merged folder, with its model card, to a Hub model repository."

    def add_arguments(self, parser):
        parser.add_argument("version", help="The version's name (see the Training page).")
        parser.add_argument("--repo", required=True, help="The Hub repository, e.g. my-org/my-model.")
        parser.add_argument("--kind", choices=ModelDownload.Kind.values, default=ModelDownload.Kind.ADAPTER)
        parser.add_argument(
            "--public", action="store_true", help="Create the repository public (default private)."
        )

    def handle(self, *args, **options):
        from training.worker import merge

        if not merge.hub_push_enabled():
            raise CommandError(merge.HUB_OFF_MESSAGE)
        version = ModelVersion.objects.filter(name=options["version"]).first()
        if version is None:
            raise CommandError(f"No model version named {options['version']!r}")
        try:
            download = downloads.download_request(version=version, kind=options["kind"], user=None)
            if download.status == ModelDownload.Status.QUEUED:
                merge.download_build_run(download_id=download.pk)  # here, rather than wait for a worker
            download.refresh_from_db()
            url = merge.download_push_to_hub(
                download=download, repo_id=options["repo"], private=not options["public"]
            )
        except (downloads.DownloadUnavailable, ValueError, merge.HubPushDisabled) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Pushed {version.name} ({download.kind}) to {options['repo']}: {url}")
