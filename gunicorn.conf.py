"""gunicorn settings, read from the working directory (start.sh, the Docker image, the
benchmark): memory per web worker.

Workers, bind address and timeouts stay on the command lines of start.sh and
scripts/docker-entrypoint.sh; this file adds only what those leave out.
"""

import os

# Load the application once in the master and fork the workers from it, so the pages
# of Django, DRF, numpy, scipy and the engine are shared copy-on-write instead of
# being imported again by every worker. Measured on 2 CPUs: +76 MB total PSS per
# extra worker without this, +21 MB with it (docs/benchmarks.md, "Memory").
preload_app = True


def when_ready(server):
    """Import every view and the recommender's libraries in the master, before fork."""
    if os.environ.get("GUNICORN_EAGER_IMPORTS", "1") == "0":
        return
    from django.urls import get_resolver

    _ = get_resolver().url_patterns  # imports every view module, as a request would
    try:
        import hnswlib  # noqa: F401
        import lightfm  # noqa: F401

        import recommendations.engine.artifacts  # noqa: F401
        import recommendations.engine.recommender  # noqa: F401
        import recommendations.serving  # noqa: F401
    except ImportError:  # pragma: no cover - a partial install still serves
        server.log.warning("recommender libraries could not be preloaded")
    # Nothing opened in the master may be shared by the forked workers.
    from django.core.cache import caches
    from django.db import connections

    connections.close_all()
    caches.close_all()
