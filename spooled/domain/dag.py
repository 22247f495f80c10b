"""A workflow's jobs form a DAG: unique keys, dependencies on known keys only, no job on itself, no cycle. Pure;
`check` raises one ValidationFailed naming the problem (and the request then creates nothing)."""

from __future__ import annotations

from spooled.domain import errors


def check(keys: list[str], depends_on: list[list[str]]) -> None:
    """`keys[i]` is job i's key, `depends_on[i]` the keys it depends on. Fields are named `jobs[i].key` /
    `jobs[i].depends_on` as in the request; a cycle is reported on `jobs` with its path."""
    index: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key in index:
            raise errors.invalid(f"jobs[{i}].key", f"duplicate key {key!r} (also jobs[{index[key]}].key)")
        index[key] = i
    for i, deps in enumerate(depends_on):
        for dep in deps:
            if dep == keys[i]:
                raise errors.invalid(f"jobs[{i}].depends_on", f"job {dep!r} cannot depend on itself")
            if dep not in index:
                raise errors.invalid(f"jobs[{i}].depends_on", f"unknown key {dep!r}")
    cycle = find_cycle([[index[d] for d in deps] for deps in depends_on])
    if cycle:
        path = " depends on ".join(repr(keys[i]) for i in cycle)
        raise errors.ValidationFailed(f"jobs: dependency cycle: {path}", {"jobs": f"dependency cycle: {path}"})


def find_cycle(parents: list[list[int]]) -> list[int] | None:
    """A cycle in the graph where node i depends on `parents[i]`, as a path that ends where it starts, or None.
    Iterative depth-first search (100 nodes at most here, but no recursion limit to think about)."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = [WHITE] * len(parents)
    for root in range(len(parents)):
        if colour[root] != WHITE:
            continue
        stack = [(root, iter(parents[root]))]
        colour[root] = GREY
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                colour[node] = BLACK
                stack.pop()
            elif colour[nxt] == GREY:
                path = [n for n, _ in stack]
                return path[path.index(nxt):] + [nxt]
            elif colour[nxt] == WHITE:
                colour[nxt] = GREY
                stack.append((nxt, iter(parents[nxt])))
    return None
