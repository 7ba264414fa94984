"""Pictures of what a ViT learned: attention maps, rollout, position similarity, filters, distance."""
