"""Policy-decision benchmark: decisions/s of the compiled decision point vs pycasbin.

What is measured
----------------
``policy.decision.DecisionPoint.decide(...)`` ("ours") on three policies:

a. the shipped default policy (``policy.rules.default_policy_text()``),
b. a generated policy of 1,000 access rules,
c. a generated policy of 100,000 access rules (the shape the differential test in
   ``tests/property/test_decision_point.py`` uses: 1,000 departments, ``officer -> clerk`` in
   every department, ``clerk -> caseworker`` in every second one, 2,000 officers holding
   ``senior`` in one department each, rules over 60 document types and 40 purposes; the
   1,000-rule policy is the same shape scaled to 10 departments and 20 senior officers),

beside a plain ``casbin.Enforcer`` and a ``casbin.FastEnforcer`` (keyed on department,
document type and purpose), both built by ``policy.casbin_oracle.casbin_enforcer`` from the
same rules, in the same run, on the same requests.

Requests are a fixed, seeded list generated near real rules: each starts from a random access
rule and keeps its department (sometimes swapped for another or an unknown one), its document
type (sometimes an unknown one) and its purpose, with an officer who is nobody in particular,
a random named officer, or one who holds a role in that department; the credit grade is
random, ``None`` (unrated) included, and the trust level random. So allows and denies (no
rule, no role, grade or trust too low) are all common; the allow fraction is printed. Casbin
gets the argument strings it needs, built before the clock starts (an unrated resident is
passed as ``"C"``, as the decision point treats them).

Ours decides the whole list, looped until a repetition lasts long enough; the best of several
repetitions is kept. Each Casbin enforcer decides the list in order until a time budget runs
out (the plain ``Enforcer`` at 100,000 rules scans every rule on every call, about a second a
call on this machine, so it gets a fixed sample of the first 20 requests, 3 with ``--quick``).
If an enforcer got through the whole list, its rate is the best of repetitions like ours;
otherwise it is the single timed pass over its sample. The ratio is ours on exactly the
requests that enforcer decided (looped) over that enforcer's rate. The plain ``Enforcer`` is
timed with ``enforce_ex`` (``enforce`` is a thin wrapper around it) so that its matched rule
comes with no second call; ``FastEnforcer.enforce`` is timed (its ``enforce_ex`` skips the
index), and its matched rule is read afterwards, untimed, under the same index filter.

While benchmarking, every decision an enforcer made is compared with ours, and the
disagreements on allow/deny are counted and printed (they should be 0; a benchmark does not
assert). The rule that allowed a request is compared too: the plain ``Enforcer`` reports the
first matching rule in file order, as ours does (should differ 0 times); ``FastEnforcer``'s
index keeps each key's rules in a ``set``, so which of several matching rules it reports
depends on string hashing and may differ from ours now and then — counted and shown apart,
for information. Goals: ours >= 50,000 decisions/s at every size, and ours >=
100x the plain ``casbin.Enforcer`` at 100,000 rules.

Run from the project root::

    .venv/bin/python -m bench.policy            # 10,000 requests per policy
    .venv/bin/python -m bench.policy --quick    # 2,000 requests, short budgets: < 30 s
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

from casbin.model import fast_policy_filter

from bench import stopping
from bench.tables import print_table
from policy.casbin_oracle import casbin_enforcer
from policy.decision import DecisionPoint
from policy.rules import (
    EVERY_OFFICER,
    AccessRule,
    PolicyRules,
    RoleLink,
    default_policy_text,
    parse_policy,
)
from policy.scales import UNRATED_GRADE_FOR_ACCESS, Grade, TrustLevel

GOAL_RATE = 50_000
GOAL_RATIO_AT_LARGEST = 100.0
LARGEST = 100_000
FAST_KEYS = (1, 2, 3)  # department, document type, purpose: as casbin_enforcer(fast=True) keys
SEED = 2026

Request = tuple[str, str, str, str, Grade | None, TrustLevel]
CasbinArgs = tuple[str, str, str, str, str, str]
Outcome = tuple[bool, str | None]  # allowed, and the rule that allowed it as written


@dataclass(frozen=True)
class Config:
    requests: int
    reps: int
    min_rep_seconds: float  # a repetition of ours loops the list at least this long
    casbin_budget: float  # seconds an enforcer may spend on its timed pass
    plain_sample_at_largest: int


@dataclass
class EngineResult:
    name: str
    sampled: int  # requests this engine decided (a prefix of the list)
    rate: float  # decisions/s
    passes: str  # how the rate was obtained, for the table
    ours_same: float  # ours, decisions/s, on exactly the same requests
    disagreements: int  # allow/deny differs from ours
    rule_differences: int  # both allow, but another rule is reported as the one that matched
    outcomes: list[Outcome] = field(repr=False, default_factory=list)

    @property
    def ratio(self) -> float:
        return self.ours_same / self.rate


@dataclass
class PolicyResult:
    label: str
    access_rules: int
    links: int
    requests: int
    allow_fraction: float
    ours_rate: float
    engines: list[EngineResult]
    build_seconds: dict[str, float]
    three_way: int  # requests of the smallest sample where the three do not all allow/deny alike

    @property
    def rate_met(self) -> bool:
        return self.ours_rate >= GOAL_RATE

    def ratio_goal(self, engine: EngineResult) -> float | None:
        if engine.name == "casbin.Enforcer" and self.access_rules >= LARGEST:
            return GOAL_RATIO_AT_LARGEST
        return None


# Policies and requests


def generated_policy(size: int, seed: int = SEED) -> PolicyRules:
    """``size`` access rules shaped like the differential test's 100,000-rule policy."""
    rng = random.Random(seed)
    n_departments = max(10, min(1000, size // 100))
    departments = [f"dept-{i}" for i in range(n_departments)]
    links = [RoleLink(0, EVERY_OFFICER, "clerk", d) for d in departments]
    links += [RoleLink(0, "clerk", "caseworker", d) for d in departments[::2]]
    links += [
        RoleLink(0, f"officer-{i}", "senior", rng.choice(departments))
        for i in range(2 * n_departments)
    ]
    access = [
        AccessRule(
            0,
            rng.choice(["clerk", "caseworker", "senior"]),
            rng.choice(departments),
            f"doc-{rng.randrange(60)}",
            f"purpose-{rng.randrange(40)}",
            rng.choice(list(Grade)),
            rng.choice(list(TrustLevel)),
        )
        for _ in range(size)
    ]
    return PolicyRules(tuple(access), (), tuple(links))


def requests_near(rules: PolicyRules, count: int, seed: int = SEED) -> list[Request]:
    """A fixed list of requests built around real rules, perturbed so denials are common."""
    rng = random.Random(seed)
    departments = sorted({r.department for r in rules.access})
    roles = {link.role for link in rules.links} | {rule.role for rule in rules.access}
    named = sorted({link.member for link in rules.links} - roles - {EVERY_OFFICER})
    holders: dict[str, list[str]] = defaultdict(list)  # department -> named role holders
    for link in rules.links:
        if link.member in named:
            holders[link.department].append(link.member)
    grades: list[Grade | None] = [None, *Grade]
    requests: list[Request] = []
    for _ in range(count):
        rule = rng.choice(rules.access)
        department = rule.department
        roll = rng.random()
        if roll < 0.05:
            department = "tax-bureau"  # in no rule
        elif roll < 0.15:
            department = rng.choice(departments)
        doc_type = rule.doc_type if rng.random() < 0.85 else "passport"  # in no rule
        choices = ["someone", rng.choice(named or ["li-ming"])]
        if holders.get(department):
            choices.append(rng.choice(holders[department]))
        officer = rng.choice(choices)
        requests.append(
            (officer, department, doc_type, rule.purpose, rng.choice(grades),
             rng.choice(list(TrustLevel)))
        )
    return requests


def casbin_args(request: Request) -> CasbinArgs:
    officer, department, doc_type, purpose, grade, trust = request
    effective = grade if grade is not None else UNRATED_GRADE_FOR_ACCESS
    return officer, department, doc_type, purpose, effective.value, trust.value


# Timing


def decide_all(point: DecisionPoint, requests: Sequence[Request]) -> None:
    decide = point.decide
    for officer, department, doc_type, purpose, grade, trust in requests:
        decide(
            officer=officer,
            department=department,
            doc_type=doc_type,
            purpose=purpose,
            grade=grade,
            trust=trust,
        )


def best_rate(run: Callable[[], object], calls: int, config: Config) -> float:
    """Best calls/s over ``config.reps`` repetitions, each looping ``run`` long enough."""
    run()  # warm-up (fills the decision point's role cache)
    best = float("inf")
    for _ in range(config.reps):
        loops = 0
        start = time.perf_counter()
        while True:
            run()
            loops += 1
            elapsed = time.perf_counter() - start
            if elapsed >= config.min_rep_seconds:
                break
        best = min(best, elapsed / (loops * calls))
    return 1 / best


def ours_outcomes(point: DecisionPoint, requests: Sequence[Request]) -> list[Outcome]:
    outcomes = []
    for officer, department, doc_type, purpose, grade, trust in requests:
        decision = point.decide(
            officer=officer,
            department=department,
            doc_type=doc_type,
            purpose=purpose,
            grade=grade,
            trust=trust,
        )
        outcomes.append((decision.allowed, decision.rule))
    return outcomes


def explained(allowed: bool, explain: Sequence[str]) -> Outcome:
    return allowed, ("p, " + ", ".join(explain)) if allowed else None


def plain_pass(enforcer: Any, args: Sequence[CasbinArgs], limit: int, budget: float) -> tuple[
    list[Outcome], float
]:
    """Decide ``args`` in order until ``limit`` requests or ``budget`` seconds; timed."""
    enforce_ex = enforcer.enforce_ex
    outcomes: list[Outcome] = []
    elapsed = 0.0
    for request in args[:limit]:
        start = time.perf_counter()
        allowed, explain = enforce_ex(*request)
        elapsed += time.perf_counter() - start
        outcomes.append(explained(allowed, explain))
        if elapsed >= budget:
            break
    return outcomes, elapsed


def fast_pass(enforcer: Any, args: Sequence[CasbinArgs], limit: int, budget: float) -> tuple[
    list[Outcome], float
]:
    """As :func:`plain_pass` for a FastEnforcer: ``enforce`` timed, its rule read untimed."""
    enforce = enforcer.enforce
    policy = enforcer.model.model["p"]["p"].policy
    outcomes: list[Outcome] = []
    elapsed = 0.0
    for request in args[:limit]:
        start = time.perf_counter()
        allowed = enforce(*request)
        elapsed += time.perf_counter() - start
        with fast_policy_filter(policy, *(request[k] for k in FAST_KEYS)):
            allowed_ex, explain = enforcer.enforce_ex(*request)
        # Should enforce and the filtered enforce_ex ever differ, count it as a rule difference.
        outcomes.append(explained(allowed, explain) if allowed == allowed_ex else (allowed, "?"))
        if elapsed >= budget:
            break
    return outcomes, elapsed


def measure_engine(
    name: str,
    enforcer: Any,
    point: DecisionPoint,
    requests: list[Request],
    ours: list[Outcome],
    limit: int,
    budget: float,
    config: Config,
) -> EngineResult:
    args = [casbin_args(r) for r in requests]
    one_pass = fast_pass if name == "casbin.FastEnforcer" else plain_pass
    outcomes, elapsed = one_pass(enforcer, args, limit, budget)
    sampled = len(outcomes)
    if sampled == len(requests):  # the whole list fitted the budget: best of repetitions
        enforce = enforcer.enforce if name == "casbin.FastEnforcer" else enforcer.enforce_ex

        def run() -> None:
            for request in args:
                enforce(*request)

        rate = best_rate(run, sampled, config)
        passes = f"best of {config.reps}"
    else:
        rate = sampled / elapsed
        passes = "1 pass"
    sample = requests[:sampled]
    ours_same = best_rate(lambda: decide_all(point, sample), sampled, config)
    pairs = list(zip(outcomes, ours, strict=False))
    disagreements = sum(theirs[0] != mine[0] for theirs, mine in pairs)
    rule_differences = sum(theirs[0] == mine[0] and theirs != mine for theirs, mine in pairs)
    return EngineResult(
        name, sampled, rate, passes, ours_same, disagreements, rule_differences, outcomes
    )


def measure_policy(
    label: str, rules: PolicyRules, point: DecisionPoint, plain_limit: int | None, config: Config
) -> PolicyResult:
    """``plain_limit``: a fixed sample for the plain Enforcer, timed whatever it takes."""
    build: dict[str, float] = {}
    enforcers: dict[str, Any] = {}
    for name, fast in (("casbin.FastEnforcer", True), ("casbin.Enforcer", False)):
        start = time.perf_counter()
        enforcers[name] = casbin_enforcer(rules, fast=fast)
        build[name] = time.perf_counter() - start

    requests = requests_near(rules, config.requests)
    ours = ours_outcomes(point, requests)
    allow_fraction = sum(allowed for allowed, _ in ours) / len(ours)
    ours_rate = best_rate(lambda: decide_all(point, requests), len(requests), config)
    everything = (len(requests), config.casbin_budget)
    fixed = (plain_limit, float("inf")) if plain_limit is not None else everything
    engines = [
        measure_engine(name, enforcers[name], point, requests, ours, limit, budget, config)
        for name, (limit, budget) in (
            ("casbin.FastEnforcer", everything),
            ("casbin.Enforcer", fixed),
        )
    ]
    common = min(e.sampled for e in engines)
    three_way = sum(
        len({ours[i][0], *(e.outcomes[i][0] for e in engines)}) > 1 for i in range(common)
    )
    return PolicyResult(
        label,
        len(rules.access),
        len(rules.links),
        len(requests),
        allow_fraction,
        ours_rate,
        engines,
        build,
        three_way,
    )


# Output


def report(results: list[PolicyResult]) -> bool:
    rows = []
    for result in results:
        rows.append(
            [
                f"{result.label}: ours",
                f"{result.requests:,}",
                f"{result.ours_rate:,.0f}",
                "-",
                "-",
                f">= {GOAL_RATE:,}/s",
                "yes" if result.rate_met else "no",
            ]
        )
        for engine in result.engines:
            goal = result.ratio_goal(engine)
            rows.append(
                [
                    f"{result.label}: {engine.name} ({engine.passes})",
                    f"{engine.sampled:,}",
                    f"{engine.rate:,.1f}" if engine.rate < 100 else f"{engine.rate:,.0f}",
                    f"{engine.ours_same:,.0f}",
                    f"{engine.ratio:,.0f}x",
                    f">= {goal:.0f}x" if goal is not None else "(info)",
                    ("yes" if engine.ratio >= goal else "no") if goal is not None else "-",
                ]
            )
    print_table(
        [
            "policy: engine",
            "requests",
            "decisions/s",
            "ours on same req/s",
            "ours / it",
            "goal",
            "met",
        ],
        rows,
    )
    print(
        "  requests: how many of the list the engine decided (ours: all of it); "
        "ours on same req/s: ours looped over exactly those requests"
    )
    print()
    for result in results:
        built = ", ".join(f"{n} {seconds:.2f} s" for n, seconds in result.build_seconds.items())
        print(
            f"  {result.label}: {result.access_rules:,} p rules, {result.links:,} g links; "
            f"allow fraction {result.allow_fraction:.1%} of {result.requests:,} requests"
        )
        print(f"    built in {built}")
        for engine in result.engines:
            allowed = sum(a for a, _ in engine.outcomes) / max(1, engine.sampled)
            print(
                f"    {engine.name} vs ours on its {engine.sampled:,} requests (allow fraction "
                f"{allowed:.1%}): {engine.disagreements} allow/deny disagreements, "
                f"{engine.rule_differences} with another matched rule reported"
            )
        common = min(e.sampled for e in result.engines)
        print(
            f"    all three on the first {common:,} requests: {result.three_way} where they do "
            "not all allow/deny alike"
        )
    largest = [r for r in results if r.access_rules >= LARGEST]
    plain_small = [
        e for r in largest for e in r.engines if e.name == "casbin.Enforcer" and e.sampled < 100
    ]
    if plain_small:
        print(
            f"  note: the plain Enforcer at {LARGEST:,} rules scans every rule on every call, so "
            f"it was timed on a sample of only {plain_small[0].sampled} requests (one pass)"
        )
    print(
        "  note: FastEnforcer keeps each key's rules in a set, so when several rules allow, "
        "which one it reports is arbitrary (hash order); the plain Enforcer and ours report "
        "the first in file order"
    )
    print()
    disagreements = sum(e.disagreements for r in results for e in r.engines)
    plain_rules = sum(
        e.rule_differences for r in results for e in r.engines if e.name == "casbin.Enforcer"
    )
    fast_rules = sum(
        e.rule_differences for r in results for e in r.engines if e.name != "casbin.Enforcer"
    )
    print(
        f"disagreements: {disagreements} allow/deny (should be 0); matched rule differs from "
        f"casbin.Enforcer's {plain_rules} times (should be 0), from FastEnforcer's "
        f"{fast_rules} times (info)"
    )
    rate_met = all(r.rate_met for r in results)
    ratio_met = all(
        e.ratio >= goal
        for r in results
        for e in r.engines
        if (goal := r.ratio_goal(e)) is not None
    )
    met = rate_met and ratio_met and bool(largest)
    print(
        f"goal met: {'yes' if met else 'no'} (>= {GOAL_RATE:,} decisions/s at every size: "
        f"{'yes' if rate_met else 'no'}; >= {GOAL_RATIO_AT_LARGEST:.0f}x casbin.Enforcer at "
        f"{LARGEST:,} rules: {'yes' if ratio_met and largest else 'no'})"
    )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small run for a smoke test")
    parser.add_argument("--requests", type=int, help="generated requests per policy")
    parser.add_argument(
        "--plain-sample", type=int, help=f"requests for the plain Enforcer at {LARGEST:,} rules"
    )
    args = parser.parse_args(argv)
    config = Config(
        requests=args.requests or (2_000 if args.quick else 10_000),
        reps=2 if args.quick else 5,
        min_rep_seconds=0.05 if args.quick else 0.2,
        casbin_budget=0.5 if args.quick else 2.0,
        plain_sample_at_largest=args.plain_sample or (3 if args.quick else 20),
    )
    print(
        f"civicvault policy benchmark — Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs, pycasbin {version('pycasbin')}, "
        f"{config.requests:,} requests per policy, casbin budget {config.casbin_budget} s "
        f"per enforcer{' (quick)' if args.quick else ''}"
    )
    print()
    results: list[PolicyResult] = []
    default_text = default_policy_text()
    default_rules = parse_policy(default_text)
    results.append(
        measure_policy(
            "default", default_rules, DecisionPoint.from_text(default_text), None, config
        )
    )
    for size in (1_000, LARGEST):
        rules = generated_policy(size)
        point = DecisionPoint(rules, f"generated-{size}")
        limit = config.plain_sample_at_largest if size >= LARGEST else None
        results.append(measure_policy(f"{size:,} rules", rules, point, limit, config))
    report(results)
    return 0


if __name__ == "__main__":
    stopping.run(main)
