"""``harness serve``: the source design's purchase route over HTTP.

A small ASGI application (:mod:`.app`, FastAPI) in front of
:class:`~harness.money.service.PurchaseService` on a psycopg pool, with bearer tokens
(:mod:`.tokens`), rate limits counted in PostgreSQL (:mod:`.limits`), the HTTP contract
shared by every client the harness has (:mod:`.contract`: the load's Locust users,
verify's ``http`` checks, the pytest plugin, the gate), a scenario runner that drives a
running app over that contract (:mod:`.scenario`), and the uvicorn runner
(:mod:`.server`).
"""
