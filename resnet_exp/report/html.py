"""`report.html`: report.md as one self-contained page (figures inlined, so it opens offline,
mailed or copied alone), the log tails of the runs that did not complete appended.
"""

from __future__ import annotations

import base64
import html
import mimetypes
from collections.abc import Sequence
from pathlib import Path

from markdown_it import MarkdownIt
from markdown_it.token import Token

from resnet_exp.atomic import atomic_write
from resnet_exp.report.aggregate import RunResult, shareable
from resnet_exp.report.markdown import render_report
from resnet_exp.tracking.record import REPORT_HTML, SUMMARY_CSV

LOG_TAIL_LINES = 40

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; overflow-wrap: anywhere; }
th { background: #f3f3f3; }
img { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{kind};base64,{base64.b64encode(data).decode('ascii')}"


def _log_tail(run: RunResult, lines: int = LOG_TAIL_LINES) -> str | None:
    """The last lines of the job's log, if it left one."""
    for log in sorted(run.job_dir.glob("*.log")):
        try:
            text = log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        tail = text.splitlines()[-lines:]
        if tail:
            return f"{log.name} (last {len(tail)} lines):\n" + "\n".join(tail)
    return None


def log_tails_markdown(runs: Sequence[RunResult]) -> list[str]:
    """A markdown section with each unsuccessful run's log tail (empty when all completed)."""
    lines: list[str] = []
    for run in (r for r in runs if not r.ok):
        tail = _log_tail(run)
        if tail:
            body = tail.replace("```", "'''")
            lines += [f"### Log of `{run.name}` ({run.status})", "", "```text", body, "```", ""]
    return ["## Log tails of unsuccessful runs", "", *lines] if lines else []


def as_text_unless_inlined(children: list[Token]) -> list[Token]:
    """User text (overrides, notes, error messages) is data: an image or link it spells in
    markdown is shown as the text it is, never fetched or followed. Only the report's own figures
    and summary.csv (inlined as data URIs above) stay images and links."""
    kept: list[Token] = []
    links: list[str | None] = []  # per open link: its target if shown as text, None if kept
    for child in children:
        target = str(child.attrGet("src") or child.attrGet("href") or "")
        if child.type == "image" and not target.startswith("data:"):
            kept.append(_text(f"![{child.content}]({target})"))
        elif child.type == "link_open":
            ours = target.startswith("data:")
            links.append(None if ours else target)
            kept.append(child if ours else _text("["))
        elif child.type == "link_close":
            opened = links.pop() if links else None
            kept.append(child if opened is None else _text(f"]({opened})"))
        else:
            kept.append(child)
    return kept


def _text(content: str) -> Token:
    return Token("text", "", 0, content=content)


def render_html(runs: Sequence[RunResult], sweep_dir: Path) -> str:
    """The page's text: the report's markdown rendered, images inlined, log tails added."""
    sweep_dir = Path(sweep_dir)
    tails = shareable("\n".join(log_tails_markdown(runs)), sweep_dir)
    text = render_report(runs, sweep_dir) + "\n" + tails
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = md.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "image":
                src = str(child.attrGet("src") or "")
                if "/" not in src and (sweep_dir / src).is_file():
                    child.attrSet("src", _data_uri(sweep_dir / src) or src)
            elif child.type == "link_open" and child.attrGet("href") == SUMMARY_CSV:
                child.attrSet("href", _data_uri(sweep_dir / SUMMARY_CSV) or SUMMARY_CSV)
        if token.children:
            token.children = as_text_unless_inlined(token.children)
    body = md.renderer.render(tokens, md.options, {})
    title = html.escape(next((ln[2:] for ln in text.splitlines() if ln.startswith("# ")), "report"))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


def write_html(runs: Sequence[RunResult], sweep_dir: Path) -> Path:
    """Write `<sweep_dir>/report.html` atomically (after the figures it embeds)."""
    path = Path(sweep_dir) / REPORT_HTML
    return atomic_write(path, render_html(runs, sweep_dir).encode("utf-8"))
