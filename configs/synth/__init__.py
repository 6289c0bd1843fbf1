"""Configs small enough to train on a laptop CPU, on data from ``kd3d synth``."""
