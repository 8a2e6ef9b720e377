"""A selection drawn on the SDAG: task nodes, their hypernyms up to the lowest
common ancestor, and the chosen heads attached to the classes they score."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from mll_jax.concepts.sdag import SDAG
from mll_jax.selection.types import Choice, Selection

__all__ = ["draw"]


def _neighbourhood(sdag: SDAG, nodes: list[str]) -> tuple[nx.DiGraph, str]:
    """The subgraph of `nodes` and every hypernym on their paths up to their lowest common ancestor."""
    ancestors = [nx.ancestors(sdag.graph, v) | {v} for v in nodes]
    common = set.intersection(*ancestors)
    lca = max(common, key=lambda v: sdag.graph.nodes[v]["depth"])
    below = nx.descendants(sdag.graph, lca) | {lca}
    keep = set.union(*ancestors) & below
    return sdag.graph.subgraph(keep).copy(), lca


def draw(sdag: SDAG, sel: Selection, path: Path, general: str | None = None) -> None:
    """Write a PNG: concept nodes in layers by depth below the LCA, task classes highlighted,
    uncovered classes in orange, chosen heads as boxes (green edges for the general model),
    edge width = weight."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # a class by name has no node: it is drawn at the node closest to it in meaning, its box the text head
    nodes = [n if n is not None else sel.close[name][0] for name, n in zip(sel.classes, sel.nodes)]
    graph, lca = _neighbourhood(sdag, nodes)
    layer = {lca: 0}
    for v in nx.topological_sort(graph):  # longest path from the LCA, so every edge points down
        layer[v] = max((layer[u] + 1 for u in graph.predecessors(v)), default=0)
    bottom = max(layer.values()) + 1
    for v in graph:
        graph.nodes[v]["layer"] = layer[v]
    head_edges, widths, edge_colors = [], [], []
    text_heads = [
        [Choice(sel.text_model, [], [f"text: {name}"], 1.0)] if name in sel.by_name else [] for name in sel.classes
    ]
    for node, choices in zip(nodes, [cs + t for cs, t in zip(sel.choices, text_heads)]):
        for c in choices:
            box = f"{c.model}\n{', '.join(c.head_names)[:40]}"
            graph.add_node(box, layer=bottom)
            graph.add_edge(node, box)
            head_edges.append((node, box))
            widths.append(1.0 + 5.0 * c.weight)
            edge_colors.append("tab:green" if c.model == general else "tab:blue")
    pos = nx.multipartite_layout(graph, subset_key="layer", align="horizontal", scale=2.0)
    pos = {v: (x, -graph.nodes[v]["layer"]) for v, (x, _) in pos.items()}
    boxes = sorted((v for v in graph if v not in sdag.graph), key=lambda v: pos[v][0])
    slots = sorted(pos[v][0] for v in boxes)  # boxes in the order of their classes, so edges do not cross
    for box, x in zip(sorted(boxes, key=lambda v: pos[next(iter(graph.predecessors(v)))][0]), slots):
        pos[box] = (x, -bottom)

    uncovered_nodes = {n for name, n in zip(sel.classes, nodes) if name in sel.uncovered}
    by_name_nodes = {n for name, n in zip(sel.classes, nodes) if name in sel.by_name}
    class_of: dict[str, str] = {}
    for name, n in zip(sel.classes, nodes):
        class_of[n] = f"{class_of[n]}, {name}" if n in class_of else name
    concepts = [v for v in graph if v in sdag.graph]
    color = [
        "tab:orange"
        if v in uncovered_nodes
        else "tab:purple"
        if v in by_name_nodes
        else "tab:blue"
        if v in class_of
        else "lightgray"
        for v in concepts
    ]
    width = max(8.0, 1.6 * max(sum(1 for v in graph if graph.nodes[v]["layer"] == d) for d in range(bottom + 1)))
    fig, ax = plt.subplots(figsize=(width, 1.6 * (bottom + 1) + 1), dpi=110)
    concept_edges = [(u, v) for u, v in graph.edges if v in sdag.graph]
    nx.draw_networkx_edges(graph, pos, edgelist=concept_edges, ax=ax, edge_color="gray", arrows=False)
    nx.draw_networkx_edges(graph, pos, edgelist=head_edges, width=widths, ax=ax, edge_color=edge_colors, arrows=False)
    nx.draw_networkx_nodes(graph, pos, nodelist=concepts, node_color=color, node_size=500, ax=ax)
    labels = {v: f"{v}\n[{class_of[v]}]" if v in class_of else v for v in concepts}
    nx.draw_networkx_labels(graph, {v: (x, y + 0.28) for v, (x, y) in pos.items()}, labels, font_size=8, ax=ax)
    boxes = {v: v for v in graph if v not in sdag.graph}
    nx.draw_networkx_labels(
        graph, pos, boxes, font_size=7, ax=ax, bbox={"boxstyle": "round", "fc": "white", "ec": "tab:blue"}
    )
    ax.set_title(
        f"Selection for {', '.join(sel.classes)}: validation accuracy "
        f"{'-' if sel.val_accuracy is None else f'{sel.val_accuracy:.3f}'}\n"
        "blue: task classes; orange: no expert covers it; purple: the node closest to a class by name\n"
        "green edges: the general model; edge width: weight",
        fontsize=9,
    )
    ax.margins(0.12, 0.15)
    ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
