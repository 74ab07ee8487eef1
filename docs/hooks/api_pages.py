"""mkdocs hook: generate the API reference pages from stemnb's public-name tables.

Each ``stemnb/_api_*.py`` table maps a public name to its home module; this hook writes one page
per table (``api/<area>.md``) with a mkdocstrings block per name, so the reference always lists
exactly what ``import stemnb`` exports.
"""

from __future__ import annotations

import importlib

from mkdocs.structure.files import File

AREAS = {
    "runtime": ("Isolate runtime", "stemnb._api_runtime",
                "`run`, `IsolatePool`, `Future`, `spawn`, `Isolate`, ports and shared memory."),
    "tasks": ("Task queue", "stemnb._api_tasks",
              "The Stem worker: producer, registry, handlers, options, context, worker, canvas."),
    "taskdata": ("Task data layer", "stemnb._api_taskdata",
                 "Envelopes, brokers, result backends, stores, rate limiting, signing, encoders."),
    "notebook": ("Notebook layer", "stemnb._api_notebook",
                 "Dashboards, progress bars; the `%stem` magics are described in "
                 "[the notebook layer](../notebook.md)."),
}


def page(area: str) -> str:
    title, table, intro = AREAS[area]
    names: dict[str, str] = importlib.import_module(table).NAMES
    lines = [f"# {title}", "", intro, ""]
    for name, home in sorted(names.items(), key=lambda item: item[0].lower()):
        lines += [f"## `stemnb.{name}`", "", f"::: stemnb{home}.{name}", "    options:",
                  "      show_root_heading: false", "      heading_level: 3", ""]
    return "\n".join(lines)


def on_files(files, config):
    for area in AREAS:
        files.append(File.generated(config, f"api/{area}.md", content=page(area)))
    return files
