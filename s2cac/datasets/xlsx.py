"""A minimal reader for the first sheet of an .xlsx workbook (standard library only: zipfile + XML).

Enough for score sheets: shared and inline strings, numbers, booleans, and the cached values of formulas.
Dates stay numbers (Excel serial days). Use openpyxl for anything richer.
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pandas as pd

_NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_CELL_REF = re.compile(r"^([A-Z]+)(\d+)$")


def _column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - ord("A") + 1)
    return n - 1


def _text(node) -> str:
    """All text of a string item (plain ``<t>`` or rich-text runs ``<r><t>``)."""
    return "".join(t.text or "" for t in node.iter(f"{{{_NS['m']}}}t"))


def _first_sheet(zf: zipfile.ZipFile) -> str:
    workbook = ElementTree.fromstring(zf.read("xl/workbook.xml"))
    sheet = workbook.find("m:sheets/m:sheet", _NS)
    if sheet is None:
        raise ValueError("the workbook has no sheet")
    rid = sheet.get(_REL_NS)
    rels = ElementTree.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    for rel in rels:
        if rel.get("Id") == rid:
            target = rel.get("Target", "").lstrip("/")
            return target if target.startswith("xl/") else f"xl/{target}"
    raise ValueError(f"the workbook names sheet relation {rid!r} but does not define it")


def read_xlsx(path: str | Path) -> pd.DataFrame:
    """The first sheet as a table: the first row is the header (kept verbatim, e.g. with trailing spaces).

    Raises:
        ValueError: not an xlsx file (not a zip, missing parts, bad XML); the message names the file.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            shared = []
            if "xl/sharedStrings.xml" in zf.namelist():
                sst = ElementTree.fromstring(zf.read("xl/sharedStrings.xml"))
                shared = [_text(si) for si in sst.findall("m:si", _NS)]
            sheet = ElementTree.fromstring(zf.read(_first_sheet(zf)))
    except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable .xlsx workbook ({err})") from err
    rows: dict[int, dict[int, object]] = {}
    for row in sheet.iterfind("m:sheetData/m:row", _NS):
        for cell in row.iterfind("m:c", _NS):
            m = _CELL_REF.match(cell.get("r", ""))
            if not m:
                raise ValueError(f"{path}: cell without a reference {cell.get('r')!r}")
            kind = cell.get("t", "n")
            v = cell.find("m:v", _NS)
            if kind == "inlineStr":
                node = cell.find("m:is", _NS)
                value: object = _text(node) if node is not None else ""
            elif v is None or v.text is None:
                continue
            elif kind == "s":
                value = shared[int(v.text)]
            elif kind in ("str", "e"):
                value = v.text
            elif kind == "b":
                value = v.text == "1"
            else:
                value = float(v.text)
            rows.setdefault(int(m.group(2)), {})[_column_index(m.group(1))] = value
    if not rows:
        raise ValueError(f"{path}: the first sheet is empty")
    first = min(rows)
    header_cells = rows.pop(first)
    width = max(max(r) for r in [header_cells, *rows.values()] if r) + 1
    header = [str(header_cells.get(i, f"column{i + 1}")) for i in range(width)]
    data = [[r.get(i) for i in range(width)] for _, r in sorted(rows.items())]
    return pd.DataFrame(data, columns=header)
