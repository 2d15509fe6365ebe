"""Anchor: AWS Compute Optimizer's default EC2 rightsizing preferences.

CPU: the P99.5 of CPU utilisation plus 20 % headroom; memory: the maximum plus 20 % headroom. These are
the defaults documented for ``PutRecommendationPreferences`` / ``UtilizationPreference`` ("When this
preference isn't specified, we use the following default values. CPU utilization: P99_5 for threshold,
PERCENT_20 for headroom. Memory utilization: PERCENT_20 for headroom"), AWS Compute Optimizer API
Reference, https://docs.aws.amazon.com/compute-optimizer/latest/APIReference/API_UtilizationPreference.html
and API_CustomizableMetricParameters.html (valid thresholds P90 | P95 | P99_5; memory has no threshold).

The percentile is taken over the stored intervals (5-minute samples in a trace, like CloudWatch's
5-minute basic monitoring). Memory headroom is applied to the maximum memory used.
"""

from __future__ import annotations

from analytics.catalogue import MachineType
from analytics.rightsizing.base import (
    DimensionNeed,
    FittingCatalogue,
    Need,
    Recommendation,
    Strategy,
    UsageHistory,
    VmSpecLike,
    memory_need,
    percentile,
)
from analytics.rightsizing.settings import AwsSettings

NAME = "aws"


def estimate(history: UsageHistory, settings: AwsSettings) -> Need:
    """CPU need = P99.5 of interval demand x 1.2; memory need = max used x 1.2 (bytes)."""
    cpu = history.cpu_vcpus
    observed = percentile(cpu, settings.cpu_percentile)
    return Need(
        cpu=DimensionNeed(
            value=observed * (1.0 + settings.cpu_headroom_fraction),
            statistic=f"p{settings.cpu_percentile:g} of CPU demand",
            observed=observed,
            headroom_fraction=settings.cpu_headroom_fraction,
            peak=float(history.cpu_peaks[history.valid_cpu()].max()),
        ),
        memory=memory_need(history, settings),
    )


STRATEGY = Strategy(NAME, "AWS Compute Optimizer defaults (CPU P99.5 + 20 %, memory max + 20 %)",
                    AwsSettings, estimate)


def recommend(
    history: UsageHistory,
    spec: VmSpecLike,
    settings: AwsSettings | None = None,
    *,
    catalogue: FittingCatalogue,
    current_type: MachineType | None = None,
) -> Recommendation:
    """Recommend a size for one VM with AWS Compute Optimizer's default preferences."""
    return STRATEGY.recommend(history, spec, settings, catalogue=catalogue, current_type=current_type)
