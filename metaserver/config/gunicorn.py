"""gunicorn settings of the metaserver.

`gunicorn -c python:metaserver.config.gunicorn metaserver.config.wsgi:application`
"""

# The access log names the path without its query string and leaves out the
# referer: both may carry sharing, viewer or API tokens (`?token=...`).
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(L)ss "%(a)s"'
