"""gunicorn settings for examples/deploy/wsgi.py."""

import multiprocessing
import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Sync workers: the token endpoint is CPU- and database-bound, not I/O-bound.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1))
# Behind a proxy on the same host; widen only for a proxy you control.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
# Method and path only: a client that wrongly puts a password in the query
# string is refused, but the request line would still carry it to the log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss'
