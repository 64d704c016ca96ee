"""VLM captioning: keyframe grids, LLaVA-family captioners through transformers, resumable caption jobs."""
