"""The formal child protection procedure: spec, loader, calendar, compiled machine and proofs.

Nothing here runs at import time, prints, or imports the simulation or reporting layers.
"""
