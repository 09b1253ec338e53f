"""Generic traversal of attrs IR nodes, so passes spell out only what changes."""
from __future__ import annotations

from typing import Callable, Iterator

import attrs

from compiler.ir.surface import Node


def children(node: Node) -> Iterator[Node]:
    """Yield the direct child nodes of `node`, in field order."""
    for f in attrs.fields(type(node)):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            yield value
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield item


def map_children(node: Node, fn: Callable[[Node], Node]) -> Node:
    """Return `node` with `fn` applied to each direct child node.

    Returns `node` itself when nothing changed, so untouched subtrees are
    shared rather than copied.
    """
    changes = {}
    for f in attrs.fields(type(node)):
        value = getattr(node, f.name)
        if isinstance(value, Node):
            new = fn(value)
            if new is not value:
                changes[f.name] = new
        elif isinstance(value, tuple) and any(isinstance(v, Node) for v in value):
            new_items = tuple(fn(v) if isinstance(v, Node) else v for v in value)
            if any(a is not b for a, b in zip(new_items, value)):
                changes[f.name] = new_items
    return attrs.evolve(node, **changes) if changes else node


def walk(node: Node) -> Iterator[Node]:
    """Yield `node` and all its descendants, pre-order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(list(children(n))))
