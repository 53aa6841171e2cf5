"""GPU compute: node pools (Karpenter or managed node groups), their controllers, GPU facts."""
