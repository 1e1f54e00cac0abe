"""Observers plug into the engine: event logging and runtime invariant monitoring.

The engine calls an observer at a case's start, at every step, and when a case leaves the
simulation. The default does nothing; observers never change what the engine does, except
that the invariant monitor stops a run whose case breaks a declared property.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from model.compiler import Step
from model.graph import Config
from model.monitor import PropertyMonitor, Violation
from model.spec import Procedure
from model.types import SimHours


class Observer(Protocol):
    """What the engine tells an observer; every method is optional in spirit (no-ops)."""

    def case_started(self, case_id: str, time: SimHours, config: Config,
                     facts: Mapping[str, object]) -> None:
        """A new case entered the simulation at ``config``, with these facts."""

    def step(self, step: Step, actor: str) -> None:
        """A case fired a trigger; ``actor`` names who or what did it."""

    def case_finished(self, case_id: str, config: Config) -> None:
        """A case came to rest for good and left the simulation."""


class NullObserver:
    """The do-nothing observer."""

    def case_started(self, case_id: str, time: SimHours, config: Config,
                     facts: Mapping[str, object]) -> None:
        """Ignore."""

    def step(self, step: Step, actor: str) -> None:
        """Ignore."""

    def case_finished(self, case_id: str, config: Config) -> None:
        """Ignore."""


class InvariantViolated(Exception):
    """A simulated case broke a declared property of its procedure: the run stops.

    Attributes:
        violation: The property, the case and the steps that led there.
    """

    def __init__(self, violation: Violation) -> None:
        """Keep the violation (as the only argument, so SimPy can re-raise it intact)."""
        super().__init__(violation)
        self.violation = violation

    def __str__(self) -> str:
        """The property, the case and its trace, one step a line."""
        v = self.violation
        lines = [f"case {v.case_id} broke {v.property_id} [{', '.join(v.rules)}]: "
                 f"{v.message}"]
        for i, s in enumerate(v.trace, 1):
            lines.append(f"  {i}. t={s.time:.1f}h {' + '.join(s.before)} --{s.trigger}--> "
                         f"{' + '.join(s.after)}")
        return "\n".join(lines)


class InvariantMonitor:
    """Checks every declared property on every simulated case, step by step.

    Safety properties are checked at each step; liveness properties (existence, response)
    when the case leaves the simulation at rest. The first violation raises
    :class:`InvariantViolated` with the case's trace.
    """

    def __init__(self, procedure: Procedure) -> None:
        """Watch cases of ``procedure``; traces are kept only for open cases."""
        self._monitor = PropertyMonitor(procedure, keep_trace=True)
        self.steps_checked = 0

    def case_started(self, case_id: str, time: SimHours, config: Config,
                     facts: Mapping[str, object]) -> None:
        """Begin watching the case."""
        self._raise(self._monitor.start(case_id))

    def step(self, step: Step, actor: str) -> None:
        """Check the step against every safety property."""
        self.steps_checked += 1
        violations = self._monitor.observe(step)
        if violations:
            raise InvariantViolated(violations[0])

    def case_finished(self, case_id: str, config: Config) -> None:
        """Check liveness at rest, then forget the case."""
        self._raise(self._monitor.at_rest(case_id, config))
        self._monitor.finish(case_id)

    @staticmethod
    def _raise(violations: list[Violation]) -> None:
        if violations:
            raise InvariantViolated(violations[0])
