"""Full-scale nuScenes configs (standard hyper-parameters, meant for GPUs)."""
