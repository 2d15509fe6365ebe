"""Per-page view functions of (the view model's snapshot, filters): one module per page.

``DashboardData`` holds the snapshot, its memo and the shared selection; each function here reads them and
returns the values a page draws. Warming the default views after a refresh is :func:`warm_default_views`.
"""
