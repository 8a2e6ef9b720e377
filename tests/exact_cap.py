"""The candidate cap checked against a full read: shared by the store tests and the scale test."""

from mll_jax.concepts import task as task_lib
from mll_jax.configs.selection import SelectionConfig
from mll_jax.selection.candidates import candidates


def cap_mismatches(hub, tasks, cap: int, fetch_factor: int) -> tuple[list, int]:
    """Classes of `tasks` whose capped candidates (index scans that stop early) are not the `cap` that every
    concept row of the task ranks best by evidence, in hub order; and how many classes the cap trimmed."""
    uncapped = SelectionConfig(patch_every_class=False, max_candidates=None)
    capped = SelectionConfig(patch_every_class=False, max_candidates=cap, fetch_factor=fetch_factor)
    mismatches, trimmed = [], 0
    for names in tasks:
        classes = task_lib.resolve(hub.sdag, list(names))
        if any(c.by_name for c in classes):
            continue  # a name no SDAG node matches: no candidates to read
        hits = {(c, m, h): hit for c, m, h, _, hit in hub.concept_rows({c for cls in classes for c in cls.concepts})}
        for cls, every, kept in zip(classes, candidates(hub, classes, uncapped), candidates(hub, classes, capped)):

            def evidence(cand, cls=cls, hits=hits):  # hits where the candidate's heads fire, concepts weighted equally
                return sum(hits.get((c, cand.model, h), 0.0) for c in cls.concepts for h in cand.heads)

            best = sorted(every, key=evidence, reverse=True)[:cap]  # stable: ties keep hub order
            if kept != [c for c in every if c in best]:
                mismatches.append((names, cls.name))
            trimmed += len(every) > cap
    return mismatches, trimmed
