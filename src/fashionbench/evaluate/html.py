"""HTML building blocks shared by the run report, the comparison page and the photo report:
one stylesheet, escaping, tables, headline cards, the page wrapper and inline PNGs."""

from __future__ import annotations

import base64
import html
import re

CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9;line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:24px 28px 60px;background:#fff;min-height:100vh}
h1{font-size:1.7em;margin:0 0 4px}h2{margin-top:38px;border-bottom:2px solid #e3e6ea;padding-bottom:4px}
.sub{color:#5b6475;margin:0 0 18px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:18px 0}
.card{background:#f1f4f8;border-radius:8px;padding:10px 16px;min-width:140px}
.card b{display:block;font-size:1.35em}.card span{color:#5b6475;font-size:.85em}
table{border-collapse:collapse;margin:10px 0 6px;font-size:.92em}
th,td{border-bottom:1px solid #e3e6ea;padding:5px 10px;text-align:right;white-space:nowrap}
.scroll{overflow-x:auto}
th{background:#f1f4f8}td:first-child,th:first-child,td.t{text-align:left}
tr:hover td{background:#fafbfc}
figure{margin:16px 0 26px}figure img{max-width:100%;height:auto;border:1px solid #eceef1}
figcaption{color:#5b6475;font-size:.9em;margin-top:4px}
.note{color:#5b6475;font-size:.9em}
code{background:#f1f4f8;padding:1px 4px;border-radius:3px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:0 30px}
@media(max-width:900px){.two{grid-template-columns:1fr}}
"""


def escape(x) -> str:
    return html.escape(str(x))


_NUMERIC = re.compile(r"^[-+<>~]?\s*[\d.,]+(e[-+]?\d+)?\s*(%|s)?(\s*(±|to|/)\s*[\d.,]+\s*(%|s)?)*$|^$|^nan$")


def html_table(headers: list[str], rows: list[list], table_id: str) -> str:
    """A table with an id (the browser test finds it); text cells left-aligned, numbers right."""
    def td(c) -> str:
        text = str(c)
        return f"<td>{escape(text)}</td>" if _NUMERIC.match(text) else f'<td class="t">{escape(text)}</td>'

    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
    return f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def html_cards(cards: list[tuple[str, str]]) -> str:
    """The row of headline figures at the top of a report: (value, what it is) pairs."""
    return '<div class="cards">' + "".join(f"<div class=card><b>{escape(v)}</b><span>{escape(k)}</span></div>"
                                           for v, k in cards) + "</div>"


def html_page(title: str, body: str) -> str:
    """A self-contained page in the reports' style (no external CSS, scripts or fonts)."""
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><meta name=viewport "
            f"content='width=device-width,initial-scale=1'><title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def png_data_url(png: bytes) -> str:
    """PNG bytes as a data: URL, so a page needs no image files beside it."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def img_tag(png: bytes, alt: str) -> str:
    return f'<img src="{png_data_url(png)}" alt="{escape(alt)}">'
