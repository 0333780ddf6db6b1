"""What operators and their tools read: readiness and liveness for load balancers, metrics for Prometheus.

It reads every app's tables, so it sits on top of them, beside the agent API.
"""
