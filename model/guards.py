"""Named guards: the only conditions a procedure file may place on a transition or deadline.

A procedure names a guard; it never contains an expression. Each guard reads the case's
recorded facts and the counts of triggers it has fired. Guards listed as a complementary
group together cover every case, which the checker uses to prove a decision point cannot
leave a case stuck.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from model.types import GuardId


@dataclass(frozen=True, slots=True)
class GuardContext:
    """What a guard may look at: the case's facts and how often each trigger has fired.

    Attributes:
        facts: What is recorded about the child and family.
        counts: How often each trigger has fired in the case's whole history.
        episode: How often each trigger has fired since the case last entered a top-level
            stage of the main flow (e.g. reviews within the current plan).
    """

    facts: Mapping[str, object] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    episode: Mapping[str, int] = field(default_factory=dict)


GuardFn = Callable[[GuardContext], bool]


@dataclass(frozen=True, slots=True)
class Guard:
    """A registered guard with a plain-English summary of what it tests."""

    name: GuardId
    fn: GuardFn
    summary: str


def _extended_notice(ctx: GuardContext) -> bool:
    return bool(ctx.facts.get("parent_learning_disability")) or bool(
        ctx.facts.get("interpreter_needed")
    )


def _designated_review_due(ctx: GuardContext) -> bool:
    # The 4th review conference of the current plan is the designated one (NCL-7.1.5):
    # three reviews already held since the plan started.
    held = ctx.episode.get("review_opens", 0) + ctx.episode.get("designated_review_opens", 0)
    return held == 3


def _good_practice(ctx: GuardContext) -> bool:
    return bool(ctx.facts.get("practice_is_good"))


def _interpreter_needed(ctx: GuardContext) -> bool:
    return bool(ctx.facts.get("interpreter_needed"))


def _caf_completed(ctx: GuardContext) -> bool:
    return bool(ctx.facts.get("caf_completed"))


def _designated_review_just_held(ctx: GuardContext) -> bool:
    # The review now deciding is the designated (4th) one (NCL-7.1.6, NCL-7.3.8): it has
    # sat, and no ordinary review has sat after it.
    return (ctx.episode.get("designated_review_opens", 0) >= 1
            and ctx.episode.get("review_opens", 0) == 3)


def _conference_cancellation_unraised(ctx: GuardContext) -> bool:
    # Walsall (WAL-canc): a conference date that did not go ahead gives grounds once in the
    # case's current stage (the initial conference, or the plan's reviews). Read from the
    # episode's counts, with thresholds only, so the answer is the same for every count
    # above 1 and the guard stays a finite truth table (cpsim check, cpsim explore).
    cancelled = ctx.episode.get("postpone_icpc", 0) + ctx.episode.get("postpone_review", 0)
    return cancelled >= 1 and ctx.episode.get("conference_cancelled", 0) == 0


_REGISTRY: tuple[Guard, ...] = (
    Guard(
        "extended_notice_needed",
        _extended_notice,
        "A parent has a learning disability or the family needs interpretation.",
    ),
    Guard(
        "standard_notice",
        lambda ctx: not _extended_notice(ctx),
        "Neither a parental learning disability nor a need for interpretation is recorded.",
    ),
    Guard(
        "interpreter_needed",
        _interpreter_needed,
        "The family needs an interpreter at meetings.",
    ),
    Guard(
        "designated_review_due",
        _designated_review_due,
        "Three review conferences of this plan have been held, so the next is the 4th "
        "(designated).",
    ),
    Guard(
        "ordinary_review_due",
        lambda ctx: not _designated_review_due(ctx),
        "The next review conference is not the 4th.",
    ),
    Guard(
        "practice_is_good",
        _good_practice,
        "The coordinator judges the practice on the case to be good.",
    ),
    Guard(
        "practice_concern",
        lambda ctx: not _good_practice(ctx),
        "The coordinator has a concern about the practice on the case.",
    ),
    Guard(
        "caf_completed",
        _caf_completed,
        "A common assessment (CAF) has already been completed for the child.",
    ),
    Guard(
        "caf_not_completed",
        lambda ctx: not _caf_completed(ctx),
        "No common assessment (CAF) has been completed yet.",
    ),
    Guard(
        "conference_cancellation_unraised",
        _conference_cancellation_unraised,
        ("In the current stage a conference date has not gone ahead and no cancellation "
         "has yet been raised."),
    ),
    Guard(
        "pre_birth",
        lambda ctx: bool(ctx.facts.get("pre_birth")),
        "The conference is about an unborn child (a pre-birth conference).",
    ),
    Guard(
        "domestic_abuse",
        lambda ctx: bool(ctx.facts.get("domestic_abuse")),
        "There is domestic abuse in the family.",
    ),
    Guard(
        "child_needs_translator",
        lambda ctx: bool(ctx.facts.get("child_first_language_not_english")),
        "The child's first language is not English.",
    ),
    Guard(
        "designated_review_just_held",
        _designated_review_just_held,
        "The review now deciding is the designated (4th) review conference of this plan.",
    ),
    Guard(
        "designated_review_not_just_held",
        lambda ctx: not _designated_review_just_held(ctx),
        "The review now deciding is not the designated (4th) review conference.",
    ),
)

GUARDS: Mapping[GuardId, Guard] = MappingProxyType({g.name: g for g in _REGISTRY})
"""Every registered guard by name."""

EXHAUSTIVE_GROUPS: tuple[frozenset[GuardId], ...] = (
    frozenset({"extended_notice_needed", "standard_notice"}),
    frozenset({"designated_review_due", "ordinary_review_due"}),
    frozenset({"practice_is_good", "practice_concern"}),
    frozenset({"caf_completed", "caf_not_completed"}),
    frozenset({"designated_review_just_held", "designated_review_not_just_held"}),
)
"""Groups of guards that, between them, hold for every possible case."""


FACTS: tuple[str, ...] = (
    "parent_learning_disability",
    "interpreter_needed",
    "practice_is_good",
    "caf_completed",
    "pre_birth",
    "domestic_abuse",
    "child_first_language_not_english",
)
"""The case facts the guards read; a scenario may set the share of cases with each."""


def evaluate(name: GuardId, ctx: GuardContext) -> bool:
    """Evaluate a registered guard by name.

    Raises:
        KeyError: if no guard of that name is registered.
    """
    return GUARDS[name].fn(ctx)


def covers_every_case(guards: frozenset[GuardId]) -> bool:
    """True when ``guards`` contains a whole exhaustive group."""
    return any(group <= guards for group in EXHAUSTIVE_GROUPS)
