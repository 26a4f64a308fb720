"""Plans-driven configurations added to nnU-Net's own plans (no planner of our own)."""
