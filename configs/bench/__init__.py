"""Benchmark v2 (issue 12, docs/benchmark.md): calibrated teachers, students and distillation
arms on the data of ``bench/make_data_v2.sh`` (256 train / 64 val key frames, boxes a sensor sees)."""
