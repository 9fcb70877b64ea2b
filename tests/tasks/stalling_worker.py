"""Celery app module for one test: the real app, whose training stalls until killed.

`celery -A tests.tasks.stalling_worker worker -Q training` runs the project's tasks
unchanged except that the engine's fit never returns, so the test can SIGKILL the
worker process mid-training.
"""

import os
import time

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "recsite.settings.test")
django.setup()

import recommendations.engine.train as engine_train  # noqa: E402
from recsite.celery import app  # noqa: E402,F401


def _stall(data, config, progress=None):
    if progress is not None:
        progress("fit", 0.1)
    time.sleep(600)
    raise RuntimeError("the test should have killed this worker")


engine_train.train_model = _stall
