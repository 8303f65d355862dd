"""Write the sha256 manifest of each bundled dataset folder and copy it into its datasheet.

Usage, after any build script changed a folder:

    python datasets/manifest.py            # all folders
    python datasets/manifest.py --check    # exit 1 if a manifest or datasheet is stale

For each folder (pystdlib_docs, tiny_llama, docstring_task, training_logs) every file except
`SHA256SUMS` and `DATASHEET.md` is hashed; `SHA256SUMS` gets one `<sha256>  <name>` line
per file (the `sha256sum` format: `cd datasets/tiny_llama && sha256sum -c SHA256SUMS`
checks it), and the table between the `sha256:begin` / `sha256:end` markers of
DATASHEET.md is rewritten. `graders.notebook.data` checks files against `SHA256SUMS`.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

FOLDERS = ("pystdlib_docs", "tiny_llama", "docstring_task", "training_logs")
SKIP = {"SHA256SUMS", "DATASHEET.md"}
BEGIN, END = "<!-- sha256:begin -->", "<!-- sha256:end -->"


def digests(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in SKIP)
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def manifest_text(d: dict[str, str]) -> str:
    return "".join(f"{h}  {name}\n" for name, h in d.items())


def datasheet_table(folder: Path, d: dict[str, str]) -> str:
    rows = ["| file | bytes | sha256 |", "|---|---:|---|"]
    rows += [f"| `{name}` | {(folder / name).stat().st_size:,} | `{h}` |" for name, h in d.items()]
    return "\n".join([BEGIN, *rows, END])


def update(folder: Path, check: bool) -> list[str]:
    stale = []
    d = digests(folder)
    manifest = folder / "SHA256SUMS"
    text = manifest_text(d)
    if not manifest.is_file() or manifest.read_text() != text:
        stale.append(str(manifest))
        if not check:
            manifest.write_text(text)
    sheet = folder / "DATASHEET.md"
    if sheet.is_file():
        old = sheet.read_text()
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        if not pattern.search(old):
            raise SystemExit(f"{sheet} has no {BEGIN} ... {END} block")
        new = pattern.sub(lambda _: datasheet_table(folder, d), old)
        if new != old:
            stale.append(str(sheet))
            if not check:
                sheet.write_text(new)
    return stale


def main(argv=None) -> None:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", type=Path, default=here)
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    stale = [
        s for name in FOLDERS if (args.root / name).is_dir() for s in update(args.root / name, args.check)
    ]
    for s in stale:
        print(("stale: " if args.check else "updated: ") + s)
    if args.check and stale:
        sys.exit(1)


if __name__ == "__main__":
    main()
