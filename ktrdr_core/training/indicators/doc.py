"""The indicator table of ``docs/engine.md``, generated from the registry.

``python -m ktrdr_core.training.indicators.doc docs/engine.md`` rewrites the
table between its two marker comments; a test fails when the two differ, so
the documentation cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ktrdr_core.training.indicators.registry import IndicatorRegistry, default_registry

BEGIN = "<!-- indicator table: generated from the registry, do not edit by hand -->"
END = "<!-- end of indicator table -->"


def markdown_table(registry: IndicatorRegistry) -> str:
    """One row per type: names, parameters with defaults, outputs, inputs, implementation."""
    rows = [
        "| type (aliases) | params (default, bounds) | outputs (first = primary) | reads | computed by |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in registry.specs():
        aliases = f" ({', '.join(spec.aliases)})" if spec.aliases else ""
        params = (
            ", ".join(
                f"`{p.describe()}`" + (f" (or {', '.join(p.aliases)})" if p.aliases else "")
                for p in spec.params
            )
            or "—"
        )
        outputs = ", ".join(f"`{o}`" for o in spec.outputs)
        reads = ", ".join(("source",) * (spec.param("source") is not None) + spec.inputs)
        rows.append(f"| `{spec.type}`{aliases} | {params} | {outputs} | {reads} | {spec.library} |")
    return "\n".join(rows)


def replace_table(text: str, table: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{table}\n{END}{tail}"


def main(argv: list[str]) -> int:
    path = Path(argv[0] if argv else "docs/engine.md")
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        print(f"{path}: no indicator table markers", file=sys.stderr)
        return 2
    path.write_text(replace_table(text, markdown_table(default_registry())), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
