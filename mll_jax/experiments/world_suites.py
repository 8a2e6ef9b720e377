"""Drawing the open world's suites from their rules (`configs.open_world_suite`): tasks as users would type them."""

from __future__ import annotations

import networkx as nx
import numpy as np

from mll_jax.concepts import matching
from mll_jax.concepts.sdag import SDAG
from mll_jax.configs.open_world_hub import DOMAINS
from mll_jax.configs.open_world_suite import SuiteRule

__all__ = ["KINDS", "draw", "plural"]

KINDS = ("within", "depth", "mixed")
_BY_WORDNET = ("lemma", "wordnet")  # how a plural that WordNet takes back to its lemma matches


def plural(name: str) -> str:
    """English plural of a name's last word (regular forms only)."""
    head, _, last = name.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}".strip()


def _name(sdag: SDAG, node: str, rng: np.random.Generator, rule: SuiteRule) -> str:
    """One of `node`'s first `rule.lemmas` lemmas that are not Latin (capitalised), at random, and that matching
    takes back to `node` (else the next such lemma; else the drawn one), in the plural with `rule.plural_share`
    where WordNet takes the plural back to that lemma (not a guess by meaning)."""
    lemmas = [lemma for lemma in sdag.graph.nodes[node]["lemmas"] if not lemma[:1].isupper()] or [node.split(".")[0]]
    first = min(rule.lemmas, len(lemmas))
    order = [lemmas[i] for i in rng.permutation(first)] + lemmas[first:]
    lemma = next((w for w in order if matching.match_one(sdag, w).node == node), order[0]).replace("_", " ")
    if rng.random() < rule.plural_share and not lemma.endswith("s"):
        typed = matching.match_one(sdag, plural(lemma))
        if typed.node == node and typed.how in _BY_WORDNET:
            return plural(lemma)
    return lemma


def _domain(sdag: SDAG, name: str, available: frozenset[str]) -> list[str]:
    return sorted(sdag.concepts_under(DOMAINS[name]) & available)


def _disjoint(sdag: SDAG, nodes: list[str], k: int, rng: np.random.Generator, chosen: list[str]) -> list[str]:
    """`chosen`, then nodes of `nodes` in random order whose concepts none of those taken holds (a dog beside a
    guide dog would be one class inside another), until there are `k`."""
    chosen = list(chosen)
    taken = set().union(*(sdag.concepts_under(v) for v in chosen))
    for v in (nodes[i] for i in rng.permutation(len(nodes))):
        if len(chosen) >= k:
            break
        if not sdag.concepts_under(v) & taken:
            chosen.append(v)
            taken |= sdag.concepts_under(v)
    return sorted(chosen)


def _depth_task(sdag: SDAG, root: str, available: frozenset[str], size: int, rng: np.random.Generator) -> list[str]:
    """Up to `size` nodes under `root` whose available concepts are disjoint and not empty, one of them inner."""
    under = sorted(v for v in nx.descendants(sdag.graph, root) if sdag.concepts_under(v) & available)
    inner = [v for v in under if len(sdag.concepts_under(v) & available) >= 2]
    return _disjoint(sdag, under, size, rng, [inner[int(rng.integers(len(inner)))]])


def draw(sdag: SDAG, available: frozenset[str], rule: SuiteRule) -> list[dict]:
    """The suite of `rule` over the concepts in `available` (those its split has images of): per task its kind,
    domains, nodes and names (what a user types; `names` is the task)."""
    rng = np.random.default_rng(rule.seed)
    plans: list[tuple[str, tuple[str, ...], list[str]]] = []
    for domain in rule.within:
        concepts = _domain(sdag, domain, available)
        for _ in range(rule.within_per_domain):
            k = int(rng.integers(rule.classes[0], min(rule.classes[1], len(concepts)) + 1))
            plans.append(("within", (domain,), _disjoint(sdag, concepts, k, rng, [])))
    for _ in range(rule.depth_tasks):
        domain = rule.depth_under[int(rng.integers(len(rule.depth_under)))]
        size = int(rng.integers(rule.depth_classes[0], rule.depth_classes[1] + 1))
        plans.append(("depth", (domain,), _depth_task(sdag, DOMAINS[domain], available, size, rng)))
    names = sorted(DOMAINS)
    for _ in range(rule.mixed_tasks):
        m = int(rng.integers(rule.mixed_domains[0], rule.mixed_domains[1] + 1))
        domains = tuple(sorted(rng.choice(names, m, replace=False).tolist()))
        pools = [_domain(sdag, d, available) for d in domains]
        union = sorted(set().union(*pools))
        k = int(rng.integers(max(rule.classes[0], m), min(rule.classes[1], len(union)) + 1))
        firsts = _disjoint(sdag, [], 0, rng, [])
        for pool in pools:  # one of each domain, then any
            firsts = _disjoint(sdag, pool, len(firsts) + 1, rng, firsts)
        plans.append(("mixed", domains, _disjoint(sdag, union, k, rng, firsts)))
    return [
        {
            "kind": kind,
            "domains": list(domains),
            "nodes": nodes,
            "names": [_name(sdag, v, rng, rule) for v in nodes],
        }
        for kind, domains, nodes in plans
    ]
