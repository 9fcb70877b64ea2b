"""gunicorn settings, read from the working directory (start.sh, the Docker image, the
benchmark): memory per web worker.

Workers, bind address and timeouts stay on the command lines of start.sh and
scripts/docker-entrypoint.sh; this file adds only what those leave out.
"""

import os

# Load the application once in the master and fork the workers from it, so the pages
# of Django, DRF, numpy, scipy and the engine are shared copy-on-write instead of
# being imported again by every worker (docs/benchmarks.md, "Memory per web worker",
# has the measured cost of each extra worker).
preload_app = True


def when_ready(server):
    """Import every view, the recommender's libraries and the active model in the
    master, before the workers are forked."""
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
    if os.environ.get("GUNICORN_PRELOAD_MODEL", "1") != "0":
        # The active model too: the workers then share its arrays, the hnswlib index
        # and the lookup tables built from them instead of building one copy each. A
        # version activated later is loaded by the master too, which then re-forks
        # the workers (recsite/prefork.py, below).
        try:
            from recommendations.serving import current_model

            current_model()
        except Exception:  # noqa: BLE001 - workers load it on their first request
            server.log.warning("active model could not be preloaded", exc_info=True)
    # The item catalog too: the workers share its arrays and, once their change
    # feed listens, re-read only the items whose rows changed since (about 13 MB per
    # worker at 100,000 items otherwise).
    from recsite.prefork import preload_catalog

    preload_catalog(server.log)
    # Nothing opened in the master may be shared by the forked workers.
    from django.core.cache import caches
    from django.db import connections

    connections.close_all()
    caches.close_all()
    if os.environ.get("GUNICORN_GC_FREEZE", "1") != "0":
        # Keep the garbage collector of the workers off the objects inherited from
        # the master: a collection writes to every object it visits, which copies
        # their pages into each worker (measured with a 300k users x 50k items model,
        # 1 -> 4 workers: +67 MB total PSS per extra worker without this, +28 MB
        # with it). GUNICORN_GC_FREEZE=0 turns it off.
        import gc

        gc.collect()
        gc.freeze()
    # A version activated while gunicorn runs: a thread of the master loads it and
    # sends the master SIGHUP, so new workers forked from it share the new model
    # (GUNICORN_RELOAD_ON_ACTIVATION=0 or GUNICORN_PRELOAD_MODEL=0: each worker
    # loads it on its own).
    from recsite import prefork

    prefork.watcher_start(server)


def on_reload(server):
    """SIGHUP (the model watcher's, or an operator's): note the version the new
    workers are forked with. gunicorn re-executes this file on every reload; the
    watcher's state lives in recsite/prefork.py, imported once."""
    import sys

    prefork = sys.modules.get("recsite.prefork")
    if prefork is not None:
        prefork.on_reload(server)

# gunicorn 27 opens a control socket at a fixed ~/.gunicorn/gunicorn.ctl shared by
# every gunicorn of the same user (tests, benchmarks and start.sh overwrite each
# other's); recsite does not use it.
control_socket_disable = True
