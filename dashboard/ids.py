"""Component IDs, prefixed by the page that owns them (``app-`` for the shell and global filters)."""

from __future__ import annotations

# Shell: location, banner, navigation, global filters, page container.
URL = "app-url"
BANNER = "app-banner"
NAV = "app-nav"
PAGE = "app-page"
VIEW = "app-view"  # the filter bar and the page: what the address describes
VIEW_KEY = "app-view-key"  # path + query the shown view was rendered for
ROUTE = "app-route"  # path + query the router is asked to render
FILTER_LABELS = "app-filter-labels"
FILTER_HOSTS = "app-filter-hosts"
FILTER_RANGE = "app-filter-range"
DATA_AS_OF = "app-data-as-of"

# Overview
OVERVIEW_KPIS = "overview-kpis"
OVERVIEW_SPEND_HOUR = "overview-spend-hour"
OVERVIEW_SPEND_DAY = "overview-spend-day"
OVERVIEW_UTILISATION = "overview-utilisation"
OVERVIEW_FINDINGS = "overview-findings"
OVERVIEW_FORECAST_BASIS = "overview-forecast-basis"
OVERVIEW_ACTIONS = "overview-actions"
OVERVIEW_SPEND_LABEL = "overview-spend-label"
OVERVIEW_PLACEMENT = "overview-placement"
OVERVIEW_HOSTS = "overview-hosts"
VM_PLACEMENT = "vm-placement"

# VMs
VMS_TABLE = "vms-table"
VMS_COUNT = "vms-count"

# VM detail
VM_HEADER = "vm-header"
VM_CPU = "vm-cpu"
VM_MEMORY = "vm-memory"
VM_DISK = "vm-disk"
VM_COST = "vm-cost"
VM_RECOMMENDATION = "vm-recommendation"
VM_HEADROOM = "vm-headroom"
VM_OPTIONS = "vm-options"
VM_PATTERN = "vm-pattern"
VM_STORAGE = "vm-storage"
VM_HEATMAP = "vm-heatmap"
VM_UUID = "vm-uuid"
VM_LOOKBACK = "vm-lookback"
VM_PROJECTION = "vm-projection"
VM_LEGEND = "vm-risk-legend"

# Recommendations
RECS_TABLE = "recs-table"
RECS_SUMMARY = "recs-summary"
RECS_SAVINGS = "recs-savings"
RECS_FRONTIER = "recs-frontier"
RECS_FRONTIER_SECTION = "recs-frontier-section"
RECS_FRONTIER_RISK_NOTE = "recs-frontier-risk-note"
RECS_EXPORT = "recs-export"
RECS_DOWNLOAD = "recs-download"
RECS_APPLY_VM = "recs-apply-vm"
RECS_APPLY_TYPE = "recs-apply-type"
RECS_APPLY_TOKEN = "recs-apply-token"
RECS_APPLY_BUTTON = "recs-apply-button"
RECS_APPLY_RESULT = "recs-apply-result"
RECS_LOOKBACK = "recs-lookback"
RECS_LEGEND = "recs-risk-legend"

# Backups
BACKUPS_TABLE = "backups-table"
BACKUPS_SUMMARY = "backups-summary"
BACKUPS_AGE = "backups-age"

# Staged data (a large fleet's short first window): poll until the full window is in, then reload
STAGED_POLL = "app-staged-poll"
STAGED_DONE = "app-staged-done"
