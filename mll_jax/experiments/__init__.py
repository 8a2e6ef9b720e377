"""Experiments on a hub: the demo suite against the baselines, hub growth, reports and pictures."""
