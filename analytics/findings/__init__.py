"""Finding building blocks that sit beside the sizing strategies: lifecycle, risk, projection, regret.

Each module is pure (arrays and frames in, frozen values out) so the fleet path, the dashboard and the
reports share one definition of every finding.
"""
