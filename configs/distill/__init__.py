"""Distillation experiment configs (teacher -> student, one file per experiment)."""
