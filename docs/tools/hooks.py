"""MkDocs hooks for the site (mkdocs.yml `hooks:`).

* The nav lists every page the site should have, including pages other work is still
  writing: an entry whose file is not there is dropped, and a page that is there but not
  listed is added under "More", so the nav never breaks a `--strict` build.
* Docstrings cross-reference in Sphinx's style (":class:`X`"), which mkdocstrings leaves
  as text; the role is dropped from the rendered page, keeping the name as code.
* `spec-vectors/README.md`, the vector format, lives outside docs/; it is added as a page,
  and links to it from docs/ (`../spec-vectors/README.md`) are pointed at that page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
_VECTOR_FORMAT = "spec-vectors/README.md"
_OUTSIDE_LINK = re.compile(r"\]\((?:\.\./)+spec-vectors/README\.md(#[^)]*)?\)")
_SPHINX_ROLE = re.compile(r":(?:class|meth|func|attr|data|exc|mod):<code>~?")
_RELATIVE_LINK = re.compile(r"\[([^\]]*)\]\((?!https?:|#|mailto:)([^)]+)\)")


def _present(docs_dir: Path, path: str) -> bool:
    return path == _VECTOR_FORMAT or (docs_dir / path).is_file()


def _prune(items: list[Any], docs_dir: Path, listed: set[str]) -> list[Any]:
    kept: list[Any] = []
    for item in items:
        if isinstance(item, str):
            if _present(docs_dir, item):
                kept.append(item)
                listed.add(item)
            continue
        ((title, value),) = item.items()
        if isinstance(value, list):
            children = _prune(value, docs_dir, listed)
            if children:
                kept.append({title: children})
        elif "://" in value or _present(docs_dir, value):
            kept.append({title: value})
            listed.add(value)
    return kept


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    docs_dir = Path(config.docs_dir)
    listed: set[str] = set()
    nav = _prune(list(config.nav or []), docs_dir, listed)
    extra = sorted(
        p.relative_to(docs_dir).as_posix()
        for p in docs_dir.rglob("*.md")
        if "tools" not in p.relative_to(docs_dir).parts
    )
    unlisted = [p for p in extra if p not in listed]
    if unlisted:
        nav.append({"More": unlisted})
    config.nav = nav
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(
        File.generated(
            config,
            _VECTOR_FORMAT,
            content=(ROOT / _VECTOR_FORMAT).read_text(encoding="utf-8"),
        )
    )
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if page.file.src_uri == _VECTOR_FORMAT:
        # Its relative links point into the repository, not the site: keep the text.
        return _RELATIVE_LINK.sub(lambda m: m.group(1), markdown)
    depth = page.file.src_uri.count("/")
    target = "../" * depth + _VECTOR_FORMAT
    return _OUTSIDE_LINK.sub(lambda m: f"]({target}{m.group(1) or ''})", markdown)


def on_page_content(html: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    return _SPHINX_ROLE.sub("<code>", html)
