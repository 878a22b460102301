"""The verdict in words, generated from the final training errors, never canned: the headline and
one sentence per kind, each claim with its interval and outcome (claims.py decides them, study.py
computes the numbers). It hedges when fewer than two depths of a kind completed, or a
configuration has one seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from resnet_exp.report.aggregate import RunResult
from resnet_exp.report.claims import (
    INCONCLUSIVE,
    MARGIN_PP,
    NO_INTERVAL,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    rises,
    seed_list,
)
from resnet_exp.report.convergence import LATE_FRACTION, STILL_FALLING_PP
from resnet_exp.report.plots import run_labels
from resnet_exp.report.stats import Effect
from resnet_exp.report.study import (
    decide,
    family_effect,
    setups,
    still_falling,
    train_errors_by_depth,
    unpooled,
)
from resnet_exp.tracking.record import KINDS, kind


def fmt_pct(value: float | None) -> str:
    """8.1234 -> '8.12%'; missing -> '–'."""
    if value is None:
        return "–"
    return f"{value:.2f}%" if math.isfinite(value) else str(value)


def fmt_effect(effect: Effect) -> str:
    """'+27.42 pp (95% CI +20.51 to +34.33 pp)', or without the interval where one seed was run."""
    text = f"{effect.estimate:+.2f} pp"
    if effect.known:
        text += f" (95% CI {effect.ci_low:+.2f} to {effect.ci_high:+.2f} pp)"
    return text


def fmt_share(share: Effect) -> str:
    """'96.1% (95% CI 88.0% to 104.3%)'; without a bounded interval, says why."""
    if share.known:
        return f"{share.estimate:.1%} (95% CI {share.ci_low:.1%} to {share.ci_high:.1%})"
    return f"{share.estimate:.1%} (no bounded interval: the plain penalty is too uncertain)"


def _settle(claim: Claim) -> str:
    if claim.seeds is None:
        return "no realistic number of seeds would settle it at this spread"
    return (
        f"about {claim.seeds} seeds per configuration would settle it "
        f"(`{seed_list(claim.seeds)}`, a power estimate from the observed spread)"
    )


_PROVISIONAL = "seed noise unknown with one seed per depth, so this is provisional"
_FLAT = f"no degradation beyond {MARGIN_PP:g} pp (the interval lies below +{MARGIN_PP:g} pp)"
_RISES = {  # the plain family's claim: it degrades
    REPRODUCED: "degrades with depth (the interval lies above zero)",
    NOT_REPRODUCED: _FLAT,
    INCONCLUSIVE: f"inconclusive (the interval includes zero and +{MARGIN_PP:g} pp)",
    NO_INTERVAL: _PROVISIONAL,
}
_BELOW = {  # the residual family's claim: it does not degrade as the plain family does
    REPRODUCED: _FLAT,
    NOT_REPRODUCED: "degrades like the plain family (the two depth effects differ by less than "
    f"{MARGIN_PP:g} pp)",
    INCONCLUSIVE: f"inconclusive (the interval includes +{MARGIN_PP:g} pp, and the gap to the "
    f"plain family's effect includes {MARGIN_PP:g} pp)",
    NO_INTERVAL: _PROVISIONAL,
}
_BELOW_PLAIN = (
    f"rises less than the plain family by more than {MARGIN_PP:g} pp (the interval of the "
    f"difference lies above +{MARGIN_PP:g} pp)"
)


def _left_out(runs: Sequence[RunResult], residual: bool) -> str:
    labels = dict(zip(map(id, runs), run_labels(runs)))
    out = [
        f"{labels[id(r)]} {r.status}"
        for r in runs
        if bool(r.residual) == residual and not (r.ok and r.final_train_err is not None)
    ]
    return f" Not counted: {', '.join(out)}." if out else ""


def _counts(counts: Sequence[int]) -> str:
    if len(set(counts)) == 1:
        return f"n = {counts[0]} seed{'s' if counts[0] != 1 else ''} per depth"
    return "n = " + "/".join(map(str, counts)) + " seeds"


def family_verdict(runs: Sequence[RunResult], residual: bool) -> str:
    """One sentence for one family, with its depth effect, 95% interval and outcome."""
    name = kind(residual)
    left_out = _left_out(runs, residual)
    found = family_effect(runs, residual)
    if found is None:
        by_depth = train_errors_by_depth(runs, residual)
        if not by_depth:
            return f"**{name}**: no completed runs — no verdict.{left_out}"
        ((depth, values),) = by_depth.items()
        return (
            f"**{name}**: only depth {depth} completed (mean final training error "
            f"{fmt_pct(sum(values) / len(values))}, n = {len(values)}) — at least two depths are "
            f"needed to judge how depth affects training error; no verdict.{left_out}"
        )
    chain = (
        f"depth {' → '.join(map(str, found.depths))}: "
        f"{' → '.join(fmt_pct(m) for m in found.means)} mean final training error "
        f"({_counts(found.counts)})"
    )
    verdict = decide(runs)
    claim = verdict.residual_claim if residual else verdict.plain_claim
    if claim is None:
        claim = rises(found.parts)  # a family alone, or provisional: its own interval
    outcome = (_BELOW if residual else _RISES)[claim.outcome]
    if claim.basis == "below plain":
        outcome = _BELOW_PLAIN
    if claim.outcome == INCONCLUSIVE:
        outcome += f"; {_settle(claim)}"
    return f"**{name}**: {chain}; depth effect {fmt_effect(found.effect)} — {outcome}.{left_out}"


def _still_falling_note(runs: Sequence[RunResult]) -> str:
    falling = [label for run, label in zip(runs, run_labels(runs)) if run.ok and still_falling(run)]
    if not falling:
        return ""
    return (
        f" This rests on {len(falling)} run{'s' if len(falling) != 1 else ''} whose training "
        f"error was still falling at the end ({', '.join(falling)}): longer training may move "
        "these numbers."
    )


def _seed_pairs(runs: Sequence[RunResult], residual: bool) -> str | None:
    """'in 5 of 5 seed pairs plain-56 ended with higher final training error than plain-20 (mean
    51.31% vs 17.90%)': the deepest against the shallowest depth, seed by seed."""
    by_depth: dict[int, dict[int | None, float]] = {}
    for run in runs:
        err = run.final_train_err
        ok = run.ok and run.depth is not None and err is not None and math.isfinite(err)
        if ok and bool(run.residual) == residual:
            by_depth.setdefault(run.depth, {})[run.seed] = err
    if len(by_depth) < 2:
        return None
    (low, shallow), (high, deep) = min(by_depth.items()), max(by_depth.items())
    seeds = [s for s in deep if s is not None and s in shallow]
    worse = sum(deep[s] > shallow[s] for s in seeds)
    pairs = f"in {worse or 'none'} of {len(seeds)} seed pairs " if seeds else ""
    name, mean = ("ResNet" if residual else "plain"), (lambda d: fmt_pct(sum(d.values()) / len(d)))
    return (
        f"{pairs}{name}-{high} ended with higher final training error than {name}-{low} (mean "
        f"{mean(deep)} vs {mean(shallow)})"
    )


def plain_words(runs: Sequence[RunResult]) -> str:
    """The verdict's first sentence, counted from the runs without any statistics."""
    found = [p for p in (_seed_pairs(runs, residual) for _, residual in KINDS) if p]
    text = "; ".join(found)
    return f"{text[:1].upper()}{text[1:]}." if text else ""


def _plain_not_shown(plain: Claim) -> tuple[str, str]:
    if plain.outcome == NOT_REPRODUCED:
        return "Degradation not reproduced", (
            "The interval rules out a plain depth effect larger than "
            f"+{MARGIN_PP:g} pp: deeper plain nets changed final training error by "
            f"{fmt_effect(plain.effect)} (too few steps, too shallow, or too easy a dataset can "
            "hide it)."
        )
    return "Inconclusive", (
        "Deeper plain nets changed final training error by "
        f"{fmt_effect(plain.effect)}, an interval that neither shows degradation nor rules out "
        f"one larger than +{MARGIN_PP:g} pp; {_settle(plain)}."
    )


def _residual_clause(resid: Claim, gap: Claim) -> str:
    effect = fmt_effect(resid.effect)
    if resid.basis == "flat":
        return (
            f"deeper residual nets show no degradation beyond the {MARGIN_PP:g} pp margin: {effect}"
        )
    if resid.basis == "below plain":
        return (
            f"deeper residual nets change by {effect}, less than the plain nets' rise by "
            f"{fmt_effect(gap.effect)}, an interval above the {MARGIN_PP:g} pp margin"
        )
    if resid.outcome == NOT_REPRODUCED:
        return f"deeper residual nets degrade alike, by {effect}"
    return (
        f"whether deeper residual nets degrade is inconclusive: {effect}, the gap to the plain "
        f"nets' rise {fmt_effect(gap.effect)}; {_settle(resid)}"
    )


_MOST = {
    REPRODUCED: "more than half: the interval lies above 50%",
    NOT_REPRODUCED: "less than half: the interval lies below 50%",
    INCONCLUSIVE: "the interval includes 50%, or has no bound",
}
_TITLE = {
    REPRODUCED: "Degradation reproduced: deeper plain nets train worse, residual nets stay "
    f"within the {MARGIN_PP:g} pp margin",
    "below plain": "Degradation reproduced: deeper plain nets train worse, residual nets far less",
    NOT_REPRODUCED: "Degradation in both families",
    INCONCLUSIVE: "Plain degradation reproduced; the residual family is inconclusive",
}


def _decision(runs: Sequence[RunResult]) -> tuple[str, str]:
    """The title and the sentences with the intervals, each claim decided by its interval."""
    found = decide(runs)
    plain, resid = found.plain, found.residual
    if plain is None:
        return "Inconclusive", "Fewer than two depths of plain nets completed."
    if found.plain_claim is None:
        r = f"; deeper residual nets by {fmt_effect(resid.effect)}" if resid else ""
        return "Provisional (one seed per configuration, so the seed noise is unknown)", (
            f"Deeper plain nets changed final training error by {fmt_effect(plain.effect)}{r}. "
            "Run several seeds (e.g. seed=0,1,2) for a verdict."
        )
    falling = _still_falling_note(runs)
    if found.plain_claim.outcome != REPRODUCED:
        title, body = _plain_not_shown(found.plain_claim)
        return title, body + falling
    if found.residual_claim is None or found.avoided is None or found.share is None:
        return "Degradation reproduced for plain nets", (
            f"Deeper plain nets train worse by {fmt_effect(plain.effect)}; fewer than two "
            "residual depths completed, so the residual fix is not yet shown." + falling
        )
    claim = found.residual_claim
    title = _TITLE.get(claim.basis if claim.basis == "below plain" else claim.outcome)
    share = f"{fmt_share(found.share)} of the plain penalty ({_MOST[found.most]})"
    return str(title), (
        f"Deeper plain nets train worse by {fmt_effect(plain.effect)}; "
        f"{_residual_clause(claim, found.avoided)}. The shortcuts avoid {share}.{falling}"
    )


def headline(runs: Sequence[RunResult], pooled: bool = False) -> str:
    """The answer: a title, the plain-language sentence, then the intervals; "No verdict" with
    the reason where the runs belong to several setups or configurations (study.unpooled),
    unless they are ``pooled`` by design (a tuned study: each configuration at its own lr)."""
    why = None if pooled else unpooled(runs)
    if why:
        return f"**No verdict**: {why}"
    title, body = _decision(runs)
    return f"**{title}**: " + " ".join(s for s in (plain_words(runs), body) if s)


def verdict_section(runs: Sequence[RunResult]) -> list[str]:
    """Per setup: the headline and one line per family; then, once, how it is decided."""
    lines: list[str] = []
    for label, members in setups(runs):
        lines += [f"### Setup: {label}", ""] if label else []
        lines += [headline(members), ""]
        if not unpooled(members):
            lines += [*(f"- {family_verdict(members, res)}" for _, res in KINDS), ""]
    epochs = sorted({r.epochs for r in runs if r.ok})
    if not epochs:
        return [*lines, "No run completed."]
    basis = (
        f"*How this is decided.* From the final training error of completed runs (after "
        f"{', '.join(map(str, epochs))} epoch{'s' if epochs != [1] else ''}; pp: percentage "
        "points). A family's depth effect is the change from its shallowest to its deepest depth "
        "along the least-squares line through the depths' means; its 95% confidence interval "
        "(CI, Welch-Satterthwaite) is the range of effects the seed-to-seed spread leaves "
        "possible. A claim is *reproduced* when its interval shows it, *not reproduced* only when "
        f"the interval rules it out beyond a margin of {MARGIN_PP:g} pp, else *inconclusive*, "
        "with the seeds a power estimate (an 80% chance of a decision at the observed spread) "
        "says would settle it. The share of the plain penalty avoided has Fieller's interval (for "
        f"a ratio). A run is *still falling* when its training error fell by over "
        f"{STILL_FALLING_PP:g} pp (and twice its noise) over its last {LATE_FRACTION:.0%} of steps."
    )
    return [*lines, basis]
