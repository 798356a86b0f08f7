"""Target-utilization autoscaler: a pure policy, a load sampler, pluggable scale hooks, and the loop."""
