"""The generated invariants docs: quick reference, implemented and roadmap lists.

They are rendered from the manifest only, deterministically (manifest order, ``\\n`` endings), so
``process:docs-fresh`` can regenerate them in memory and compare bytes.
"""

from __future__ import annotations

from pathlib import Path

from symphony_schema.invariants.manifest import MANIFEST_NAME, Invariant, Manifest

QUICK = "INVARIANTS_QUICK.md"
IMPLEMENTED = "INVARIANTS_IMPLEMENTED.md"
ROADMAP = "INVARIANTS_ROADMAP.md"
PROCESS = "INVARIANTS_PROCESS.md"
GENERATED = (QUICK, IMPLEMENTED, ROADMAP)

_BANNER = (
    f"<!-- Generated from {MANIFEST_NAME} by `symphony-schema invariants docs`. Do not edit: edit "
    "the manifest and regenerate (process:docs-fresh fails on a stale file). -->\n\n"
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _refs(invariant: Invariant) -> str:
    return ", ".join(f"`{ref}`" for ref in invariant.check_refs) or "-"


def render_quick(manifest: Manifest) -> str:
    lines = [
        _BANNER + "# Invariants: quick reference\n",
        f"{len(manifest.with_status('implemented'))} implemented, "
        f"{len(manifest.with_status('roadmap'))} on the roadmap. Details: [{IMPLEMENTED}]"
        f"({IMPLEMENTED}), [{ROADMAP}]({ROADMAP}); rules for humans: [{PROCESS}]({PROCESS}).\n",
        "| id | severity | status | area | title | checked by |",
        "|---|---|---|---|---|---|",
    ]
    for inv in manifest.invariants:
        lines.append(
            f"| {inv.id} | {inv.severity} | {inv.status} | {inv.area} | {_cell(inv.title)} | "
            f"{_refs(inv)} |"
        )
    return "\n".join(lines) + "\n"


def _section(inv: Invariant) -> str:
    refs = "\n".join(f"  - `{ref}`" for ref in inv.verification) or "  - (none yet)"
    return (
        f"## {inv.id}: {inv.title}\n\n"
        f"- **Severity:** {inv.severity}\n"
        f"- **Area:** {inv.area}\n"
        f"- **Assertion:** {inv.assertion}\n"
        f"- **Verification:**\n{refs}\n"
    )


def _render_list(manifest: Manifest, status: str, title: str, intro: str) -> str:
    invariants = manifest.with_status(status)
    body = "\n".join(_section(inv) for inv in invariants) or "None.\n"
    return _BANNER + f"# {title}\n\n{intro}\n\n" + body


def render_implemented(manifest: Manifest) -> str:
    return _render_list(
        manifest,
        "implemented",
        "Implemented invariants",
        "Each is enforced by the checks listed (run by `symphony-schema verify` and "
        "`nox -s invariants`) and proven able to fail by the tests listed.",
    )


def render_roadmap(manifest: Manifest) -> str:
    return _render_list(
        manifest,
        "roadmap",
        "Roadmap invariants",
        "Agreed rules that no check enforces yet. An invariant moves to `implemented` only when "
        "every verification reference resolves (process:promotion).",
    )


def render_all(manifest: Manifest) -> dict[str, str]:
    return {
        QUICK: render_quick(manifest),
        IMPLEMENTED: render_implemented(manifest),
        ROADMAP: render_roadmap(manifest),
    }


def write_all(manifest: Manifest, docs: Path) -> list[Path]:
    """Regenerate the docs; returns the files whose content changed."""
    changed = []
    for name, content in render_all(manifest).items():
        path = docs / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.write_text(content, encoding="utf-8", newline="\n")
            changed.append(path)
    return changed
