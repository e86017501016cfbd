"""Serve the demo: the ASGI app under uvicorn, on the embedded default."""

import uvicorn
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve config.asgi:application for the demo (one process: the in-memory channel layer needs it)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, host: str, port: int, **options):
        self.stdout.write(
            f"database: {settings.DATABASES['default']['ENGINE']} {settings.DATABASES['default']['NAME']}; "
            f"channel layer: {settings.CHANNEL_LAYERS['default']['BACKEND']}; "
            f"celery eager: {settings.CELERY_TASK_ALWAYS_EAGER}"
        )
        self.stdout.write(f"open http://{host}:{port}/login/")
        uvicorn.run(
            "config.asgi:application", host=host, port=port, log_level="info", lifespan="off"
        )
