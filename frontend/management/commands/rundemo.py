"""Serve the demo: the ASGI app under uvicorn on the embedded default, with live bridges."""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand

from frontend import demo


class Command(BaseCommand):
    help = (
        "Serve config.asgi:application for the demo (one process: the in-memory channel layer "
        "needs it), with simulated home bridges uploading live readings."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-bridges", action="store_true", help="serve without live traffic")

    def handle(self, *args, host: str, port: int, no_bridges: bool, **options):
        db = settings.DATABASES["default"]
        self.stdout.write(
            f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db['NAME']}; "
            f"channel layer: {settings.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1]}; "
            f"celery eager: {settings.CELERY_TASK_ALWAYS_EAGER}"
        )
        if not no_bridges:
            tokens = demo.ensure_bridges()
            self.stdout.write(
                "backfilling a week of readings for the demo patients (first run only)…"
            )
            count = demo.backfill_history(tokens)
            self.stdout.write(f"history: {count} readings stored now")
            demo.start_live_bridges(tokens, f"http://{host}:{port}")
            self.stdout.write("live: simulated home bridges upload new readings every few seconds")
        self.stdout.write(self.style.SUCCESS(f"open http://{host}:{port}/login/"))
        uvicorn.run(
            "config.asgi:application", host=host, port=port, log_level="warning", lifespan="off"
        )
