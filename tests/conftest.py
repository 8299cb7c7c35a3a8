"""Test-session setup: nbval's notebook kernels inherit the project's OpenMP environment."""

from cxrlib.openmp import apply_openmp_environment

apply_openmp_environment()
