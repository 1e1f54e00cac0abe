"""Caseload simulation: SimPy drives the compiled procedure (built in the simulation issue)."""
