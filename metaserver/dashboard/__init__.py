"""The dashboard: server-rendered pages for people, enhanced with htmx.

Templates, static files and views only; every dataset comes through the gates of
`metaserver.datasets.access`, every organization question through
`metaserver.accounts.access`.
"""
