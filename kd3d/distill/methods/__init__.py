"""Distillation methods: each module exposes ``<method>_terms(**config) -> (terms, adapters)``.

``METHODS`` maps a method name to its term factory (for the CLI/configs)."""
from __future__ import annotations


def _factories():
    from kd3d.distill.methods.bevdistill import bevdistill_terms
    from kd3d.distill.methods.distillbev import distillbev_terms
    from kd3d.distill.methods.generic import generic_terms
    from kd3d.distill.methods.pointdistiller import pointdistiller_terms
    from kd3d.distill.methods.pvd import pvd_terms
    from kd3d.distill.methods.unidistill import unidistill_terms

    return {"bevdistill": bevdistill_terms, "distillbev": distillbev_terms, "unidistill": unidistill_terms,
            "pointdistiller": pointdistiller_terms, "pvd": pvd_terms, "generic": generic_terms}


def build_terms(method: str, **config):
    """``(terms, adapters)`` of ``method`` built from keyword ``config``."""
    factories = _factories()
    if method not in factories:
        raise KeyError(f"unknown distillation method {method!r}; known: {sorted(factories)}")
    return factories[method](**config)
