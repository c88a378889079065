"""Execution machinery shared by explainers (the perturbation engine streams image x mask work)."""
