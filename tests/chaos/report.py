"""The results table: plain text for the terminal, Markdown for docs/reliability.md."""

from __future__ import annotations

from tests.chaos.checks import Result

COLUMNS = ("scenario", "acked", "present", "completed", "lost", "double", "stuck", "overlap", "recover s", "result")


def row(r: Result) -> list[str]:
    recover = f"{r.recover_secs:.1f}" if r.recover_secs is not None else "-"
    return [r.scenario, str(r.acknowledged), str(r.present), str(r.completed), str(r.lost), str(r.double),
            str(r.stuck), str(r.overlaps), recover, "PASS" if r.passed else "FAIL"]


def text(results: list[Result], *, details: bool = True) -> str:
    rows = [list(COLUMNS)] + [row(r) for r in results]
    widths = [max(len(x[i]) for x in rows) for i in range(len(COLUMNS))]
    lines = []
    for i, x in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(x, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    if details:
        for r in results:
            lines.append("")
            lines.append(f"{r.scenario} ({r.duration_secs:.0f} s): {'PASS' if r.passed else 'FAIL'}")
            for name, (ok, detail) in r.checks.items():
                lines.append(f"  [{'ok' if ok else 'FAIL'}] {name}" + (f": {detail}" if detail and not ok else ""))
            for name, value in r.figures.items():
                lines.append(f"  {name}: {value}")
            for failure in r.failures:
                lines.append(f"  ! {failure}")
    return "\n".join(lines)


def markdown(results: list[Result], *, command: str, when: str, environment: str) -> str:
    out = [f"Command: `{command}`  ", f"Run: {when}, {environment}", "",
           "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(COLUMNS))) + "|"]
    for r in results:
        out.append("| " + " | ".join(row(r)) + " |")
    out.append("")
    for r in results:
        out.append(f"**{r.scenario}** ({r.duration_secs:.0f} s, {'pass' if r.passed else 'FAIL'})")
        out.append("")
        for name, (ok, detail) in r.checks.items():
            out.append(f"- {'✓' if ok else '✗ FAIL'} {name}" + (f": {detail}" if detail and not ok else ""))
        for name, value in r.figures.items():
            out.append(f"- {name}: {value}")
        for failure in r.failures:
            if not failure.split(":")[0] in r.checks:
                out.append(f"- ✗ {failure}")
        out.append("")
    return "\n".join(out)
