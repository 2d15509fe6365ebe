"""The HTTP API under ``/api/v1/`` (and ``/healthz``, ``/readyz``): a face beside the dashboard, over the same
analysis entry point and plan runner as the CLI. Mounted on a Flask server by the composition root
(``rightsizer.webapp``); it imports nothing of the dashboard.
"""
