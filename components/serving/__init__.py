"""Inference serving: runtime presets, InferenceService, KEDA, the AWS Load Balancer
Controller and rollout strategies (rolling, canary, blueGreen)."""
