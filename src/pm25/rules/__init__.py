"""What the readings mean: the alert rule, daily means, sensor status and the plausibility review."""
