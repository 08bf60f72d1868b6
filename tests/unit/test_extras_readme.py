"""The documentation's option tables list exactly the extras each connection type understands.

The connection types' tables are in ``docs/connections.md``, the common options' in ``docs/options.md``;
the README links both.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_tokens.extras import COMMON_EXTRAS, EXTRAS

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
CONNECTIONS = (REPO / "docs" / "connections.md").read_text()
OPTIONS = (REPO / "docs" / "options.md").read_text()


def sections(page: str) -> dict[str, str]:
    """Return a page's ``## `` sections by title."""
    parts = re.split(r"^## (.+)$", page, flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def first_table(text: str) -> list[list[str]]:
    """Return the cells of each row of the first Markdown table in ``text``, header first, rule left out."""
    rows = []
    for line in text[text.index("\n|") + 1 :].splitlines():
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not all(set(cell) <= {"-", ":"} for cell in cells):
            rows.append(cells)
    return rows


def vendor_sections() -> dict[str, str]:
    """Return each vendor section of the connections page by the connection type it documents."""
    found = {}
    for text in sections(CONNECTIONS).values():
        if match := re.search(r"^Connection type \*\*.+?\*\* \(`(\w+)`\)", text, flags=re.MULTILINE):
            found[match[1]] = text
    return found


@pytest.mark.parametrize("conn_type", sorted(EXTRAS))
def test_a_vendor_table_lists_exactly_its_extras(conn_type: str) -> None:
    header, *rows = first_table(vendor_sections()[conn_type])
    assert header[1] == "stored as"
    documented = {m[1]: row[0] for row in rows if (m := re.fullmatch(r"extra `(\w+)`", row[1]))}
    assert set(documented) == {extra.name for extra in EXTRAS[conn_type]}
    for extra in EXTRAS[conn_type]:
        assert documented[extra.name] == extra.label  # a form field under its label; others unlabelled


def test_every_documented_connection_type_has_a_table_entry() -> None:
    assert set(vendor_sections()) == set(EXTRAS)


def test_the_options_table_lists_exactly_the_common_extras() -> None:
    header, *rows = first_table(sections(OPTIONS)["Options"])
    assert header[1] == "connection extra"
    documented = {name for row in rows for name in re.findall(r"`(\w+)`", row[1])}
    assert documented == {extra.name for extra in COMMON_EXTRAS}


def test_the_options_say_what_happens_to_an_unknown_extra() -> None:
    options = " ".join(sections(OPTIONS)["Options"].split())
    assert "did you mean 'refresh_margin'?" in options
    assert "--allow-unknown-extras" in options


def test_the_readme_links_both_pages() -> None:
    assert "(docs/connections.md" in README
    assert "(docs/options.md" in README
