"""Caseload simulation: SimPy drives the compiled procedure (built in the simulation issue)."""

from model import native as _native

__path__ = _native.attach(__name__, __path__)
