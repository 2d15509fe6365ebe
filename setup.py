"""Package layout that pyproject.toml cannot say alone: two checkout folders installed under ``rightsizer``.

* ``data/`` (price catalogues) installs as ``rightsizer.data``;
* ``docs/`` contributes its example files (``*.example.*``; pyproject's package-data picks them) as
  ``rightsizer.examples``.
Packages are found as namespace packages, so the data
folders inside packages (``dashboard/vendor``, ``dashboard/prometheus``, ...) are installed too.
Everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

PACKAGES = ["collector", "analytics", "dashboard", "rightsizer", "core", "api"]

setup(
    packages=find_namespace_packages(include=[p + s for p in PACKAGES for s in ("", ".*")],
                                     exclude=["*.__pycache__", "*.__pycache__.*"])
    + ["rightsizer.data", "rightsizer.examples"],
    package_dir={"rightsizer.data": "data", "rightsizer.examples": "docs"},
)
