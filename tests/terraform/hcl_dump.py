"""Print the declarations of every Terraform module directory under a root as JSON.

Run with the checkov venv's Python (it has the `hcl2` parser); the project venv does not:
    .cache/tools/checkov-venv/bin/python tests/terraform/hcl_dump.py terraform/
Output: {dir: {"variables": {name: has_default}, "outputs": [...], "locals": [...],
"modules": {name: {"source": str, "args": [...]}}, "resources": [...], "data": [...]}}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import hcl2

META = {"source", "version", "providers", "depends_on", "count", "for_each", "__start_line__", "__end_line__"}


def _blocks(doc: dict, kind: str) -> list[dict]:
    return doc.get(kind, [])


def describe(directory: Path) -> dict:
    info: dict = {"variables": {}, "outputs": [], "locals": [], "modules": {}, "resources": [], "data": []}
    for tf in sorted(directory.glob("*.tf")):
        with tf.open(encoding="utf-8") as fh:
            doc = hcl2.load(fh)
        for block in _blocks(doc, "variable"):
            for name, body in block.items():
                info["variables"][name] = "default" in body
        for block in _blocks(doc, "output"):
            info["outputs"].extend(block)
        for block in _blocks(doc, "locals"):
            info["locals"].extend(k for k in block if not k.startswith("__"))
        for block in _blocks(doc, "module"):
            for name, body in block.items():
                source = body["source"][0] if isinstance(body["source"], list) else body["source"]
                info["modules"][name] = {"source": source, "args": sorted(k for k in body if k not in META)}
        for block in _blocks(doc, "resource"):
            for rtype, named in block.items():
                info["resources"].extend(f"{rtype}.{n}" for n in named)
        for block in _blocks(doc, "data"):
            for dtype, named in block.items():
                info["data"].extend(f"{dtype}.{n}" for n in named)
    return info


def main(root: str) -> None:
    base = Path(root).resolve()
    dirs = sorted({p.parent for p in base.rglob("*.tf") if ".terraform" not in p.parts})
    print(json.dumps({str(d.relative_to(base)): describe(d) for d in dirs}, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
