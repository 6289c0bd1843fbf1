"""Visualisation: scene pictures (BEV, perspective), camera grids, distillation maps, evaluation
plots, a self-contained HTML viewer and open3d export. Headless by default (numpy + PIL,
matplotlib Agg); open3d is optional and imported lazily by :mod:`kd3d.vis.o3d`."""
