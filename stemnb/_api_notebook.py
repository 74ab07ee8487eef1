"""Public names of the notebook layer (magics, dashboards, progress), each mapped to its home module."""

NAMES: dict[str, str] = {
    "progress": "._progress",
    "ProgressBar": "._progress",
    "PoolDashboard": "._dashboard_pool",
    "WorkerDashboard": "._dashboard_worker",
}
