"""Reading a numeric CSV table with a header row: the standard library's ``csv`` reader, encoding detection and
one-line errors for what users' tables get wrong.

- Encoding: a byte-order mark (UTF-8, UTF-16) decides; otherwise UTF-8, else latin-1 (every byte decodes), with a
  :class:`DataWarning` saying so, since a latin-1 header is read right only if the file really is latin-1.
- Header: names are stripped; an unnamed or repeated column is refused (one would silently stand for the other).
- Cells: quoted values (``"1.5"``) and surrounding spaces are accepted; blank lines are skipped; anything else that
  is not a number is refused naming its row and column.
"""

from __future__ import annotations

import codecs
import csv
import io
import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError


class DataWarning(UserWarning):
    """Something in a dataset file that was read, but that the user should know about (e.g. a guessed encoding)."""


DELIMITER_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "space": " ", "pipe": "|"}
"""Spellings of delimiters that are awkward to type in a shell, accepted by :func:`parse_delimiter`."""


def parse_delimiter(value: str | None, *, flag: str = "--delimiter") -> str | None:
    """``value`` as one delimiter character (``tab``/``\\t``, ``semicolon``, ... accepted); None stays None."""
    if value is None:
        return None
    delim = DELIMITER_NAMES.get(value.lower(), value)
    if len(delim) != 1 or delim in "\"\r\n" or delim.isalnum() or delim in ".-+":
        from ..errors import ConfigError

        raise ConfigError(f"{flag} {value!r} is not a single separator character. Fix: pass one character such as "
                          f"{flag} ';' (or {flag} tab).")
    return delim


def decode(raw: bytes, source: str) -> str:
    """The file's text: a BOM decides its encoding; else UTF-8; else latin-1, with a :class:`DataWarning`."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8", errors="strict")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(source, "starts with a UTF-16 byte-order mark but is not valid UTF-16.",
                            "save the file as UTF-8.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        warnings.warn(f"{source}: is not UTF-8 (byte 0x{raw[e.start]:02x} on line {line}); read as latin-1, so check the column "
                      f"names. Fix: save the file as UTF-8 to silence this.", DataWarning, stacklevel=3)
        return raw.decode("latin-1")


def read_numeric_csv(path: str | Path, *, delimiter: str = ",", unit: str = "step",
                     header_required: bool = True) -> tuple[list[str], np.ndarray]:
    """``(header, values)``: the header row's names and the remaining rows as a float64 ``[rows, columns]`` array.

    ``unit`` names what a row is in messages ("step", "sample"). Raises :class:`DataError` (one line naming the file,
    the row or column, and the fix) for an empty file, an unnamed or repeated column name, a row of the wrong
    length or a cell that is not a number.
    """
    path = Path(path)
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(source, f"cannot be read ({e.strerror or type(e).__name__}).", "check the path and its permissions.") from None
    text = decode(raw, source)
    if "\x00" in text:
        raise DataError(source, "holds NUL bytes: it is not a text CSV (or is UTF-16/32 without a byte-order mark).",
                        "save it as a UTF-8 CSV.")
    try:
        rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
                if any(cell.strip() for cell in row)]
    except csv.Error as e:
        raise DataError(source, f"is not a well-formed CSV ({e}).", "check the quoting and the delimiter (--delimiter).") from None
    if not rows:
        raise DataError(source, "is empty.", f"pass a CSV with a header row and one row per {unit}.")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    hint = _delimiter_hint(header, delimiter)
    if header_required and all(_is_number(h) for h in header):
        raise DataError(source, "has no header row (its first row is numbers).", "add a header row naming the columns.")
    unnamed = [j + 1 for j, h in enumerate(header) if not h]
    if unnamed:
        raise DataError(source, f"header column {unnamed[0]} has no name.",
                        "name every column in the header row (a pandas index column: save with index=False).")
    seen: dict[str, int] = {}
    for j, h in enumerate(header):
        if h in seen:
            raise DataError(source, f"the header names column '{h}' twice (columns {seen[h] + 1} and {j + 1}).",
                            "give every column a unique name.", key=h)
        seen[h] = j
    if not body:
        raise DataError(source, "has a header but no rows.", f"pass a CSV with one row per {unit}.")
    try:
        values = np.array(body, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(header):
            raise ValueError
    except ValueError:
        _raise_first_bad_cell(body, header, source, hint)
    return header, values


def _raise_first_bad_cell(rows: list[list[str]], header: list[str], source: str, hint: str):
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise DataError(source, f"row {i + 2} has {len(row)} fields but the header has {len(header)}.",
                            hint or "fix that row, or pass the file's separator with --delimiter.")
        for j, cell in enumerate(row):
            if not _is_number(cell):
                raise DataError(source, f"row {i + 2} holds {cell!r}, not a number.",
                                hint or "fix that cell (flags as 0/1), or pass the file's separator with --delimiter.", key=header[j])
    raise DataError(source, "cannot be parsed as numbers.", hint or "check the separator (--delimiter).")


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """A fix naming the separator the file seems to use, when its header is one column holding another separator."""
    if len(header) != 1:
        return ""
    for other in (";", "\t", "|", ",", " "):
        if other != delimiter and other in header[0]:
            shown = "tab" if other == "\t" else repr(other)
            return f"the file seems to separate columns with {shown}: pass --delimiter {shown}."
    return ""


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False
