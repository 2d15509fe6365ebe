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

from analytics.rightsizing.base import percentile_estimate
from analytics.rightsizing.decide import Strategy
from analytics.rightsizing.settings import AwsSettings

NAME = "aws"


#: CPU need = percentile of interval demand x (1 + headroom); memory need = max used x (1 + headroom).
estimate = percentile_estimate

STRATEGY = Strategy(NAME, "AWS Compute Optimizer defaults (CPU P99.5 + 20 %, memory max + 20 %)",
                    AwsSettings, estimate)

