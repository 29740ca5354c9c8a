"""Work on an existing queue engine (huey): converge one customer, sweep them all.

Embedded default: huey on a SQLite file next to the database (no server to run). Scale-out:
NOREX_QUEUE_URL=redis://HOST:PORT/DB puts the queue on Redis so several `norex worker` machines share
it. Jobs carry only the opaque customer id; they read everything else from the database when they run.
"""
