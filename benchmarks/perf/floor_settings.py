"""Settings of the serving floor's Django server: the benchmark's settings with the
floor's do-nothing views in front of the project's URLs (benchmarks/perf/floor.py).
"""

from recsite.settings.base import *  # noqa: F401,F403

ROOT_URLCONF = "benchmarks.perf.floor_urls"
