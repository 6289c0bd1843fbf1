"""Experiment configs of the toy rig (tests and the toy bench suite only)."""
