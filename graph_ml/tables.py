"""Delimited text files -> pyarrow tables, with errors that name the file, the line and the fix.

The reading itself is pyarrow's multi-threaded CSV reader (a 1M-line file in well under a
second). Around it, what a Python loop used to give for free and a columnar reader does not:

- `scan()` streams the file once (sha256, NUL bytes, UTF-8 validity) so that a binary,
  NUL-filled, UTF-16 or Latin-1 file is named as such, with the line of the first bad byte;
- `sniff()` finds the delimiter (comma, tab, semicolon, pipe, or runs of whitespace) and the
  header from the first lines, and says which one it chose;
- when pyarrow refuses a row or a cell, the message is rebuilt from a second, Python-level
  pass over the file (only then), so it still says "line 7: 3 fields where the header has 2".
"""

from __future__ import annotations

import codecs
import csv
import functools
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from core.errors import UserInputError

# Read as a missing value, never as a number (case variants listed: pyarrow matches exactly).
MISSING = ("", "nan", "na", "n/a", "null", "none")
NULLS = sorted({v for m in MISSING for v in (m, m.upper(), m.capitalize())} | {"NaN"})
DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}
COMMENT = ("#", "%")  # SNAP and Matrix Market edge lists start with comment lines
SNIFF_BYTES = 1 << 16  # the first 64 KiB decide the delimiter and header
SNIFF_LINES = 50
CHUNK = 1 << 20  # streaming unit of scan(): memory stays flat on large files
# Columns are parsed on one thread, 64 KiB of text at a time, into the system allocator:
# measured on a 23 MiB graph, 5x less transient memory than pyarrow's threaded default
# (1 MiB blocks, an allocator that keeps freed pages), at the same speed (~0.1 s).
POOL = pa.system_memory_pool()
BLOCK = 1 << 16


def give_back() -> None:
    """Return freed heap pages to the OS (glibc `malloc_trim`, which numpy's arrays share),
    so that a large temporary freed before the next large allocation is not counted twice."""
    POOL.release_unused()


def system_memory(function: Callable) -> Callable:
    """Run `function` with pyarrow allocating from `POOL` (hash tables of 100k ids held
    22 MiB of pyarrow's default allocator after use; the system one gives it back)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        previous = pa.default_memory_pool()
        pa.set_memory_pool(POOL)
        try:
            return function(*args, **kwargs)
        finally:
            pa.set_memory_pool(previous)
            POOL.release_unused()

    return wrapper


@dataclass(frozen=True)
class Layout:
    """How a text table is laid out.

    Attributes:
        delimiter: the field separator; None for runs of whitespace.
        header: the column names (stripped), or None when the file has no header line.
        skip_lines: physical lines before the first data line (comments, blanks, header).
        width: number of fields of every row.
    """

    delimiter: str | None
    header: list[str] | None
    skip_lines: int
    width: int

    @property
    def delimiter_name(self) -> str:
        return "whitespace" if self.delimiter is None else DELIMITERS[self.delimiter]


@dataclass
class TextTable:
    """A parsed file: its columns, how it was laid out, and its content hash."""

    path: Path  # as named by the caller, for messages
    opened: Path  # the resolved file that was read
    layout: Layout
    table: pa.Table
    sha256: str
    rows: int = 0
    lines: int = 0  # lines in the file: an upper bound on the rows, to preallocate

    def release(self) -> None:
        """Drop the parsed columns (once converted) and give their memory back to the OS."""
        self.rows, self.table = self.table.num_rows, pa.table({})
        POOL.release_unused()
        pa.default_memory_pool().release_unused()

    @property
    def names(self) -> list[str]:
        """Every column of the file (read or not)."""
        return self.layout.header or column_names(self.layout.width)

    @property
    def num_rows(self) -> int:
        return self.table.num_rows or self.rows

    def where(self, row: int) -> str:
        """'<file>, line N' for data row `row` (0-based), found by re-reading the file."""
        return f"{self.path}, line {line_of_row(self.opened, self.layout.skip_lines, row)}"


def column_names(width: int) -> list[str]:
    """Names of the columns of a file without a header: 'column 1', 'column 2', ..."""
    return [f"column {i + 1}" for i in range(width)]


def _line_at(opened: Path, offset: int) -> int:
    """1-based line number of byte `offset`."""
    with opened.open("rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def scan(path: Path, opened: Path, kind: str) -> tuple[str, int]:
    """Stream `opened` once: its sha256 and its number of lines (an upper bound on its rows),
    after checking that it is UTF-8 text without NUL bytes.

    Raises:
        UserInputError: a NUL byte (binary, NUL-filled or UTF-16 file) or invalid UTF-8
            (Latin-1 / Windows-1252 text, or binary), with the line and the fix.
    """
    digest, decoder, offset = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), 0
    lines = 1
    with opened.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if offset == 0 and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
                raise UserInputError(
                    f"{path}: the {kind} file is UTF-16 text. Fix: save it as UTF-8 (Excel: "
                    "'CSV UTF-8'; or `iconv -f utf-16 -t utf-8`)."
                )
            nul = chunk.find(b"\x00")
            if nul >= 0:
                raise UserInputError(_nul_message(path, opened, kind, offset + nul))
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                raise UserInputError(
                    _encoding_message(path, opened, kind, offset + error.start, chunk[error.start])
                ) from None
            offset += len(chunk)
            lines += chunk.count(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UserInputError(
            f"{path}: the {kind} file ends in the middle of a UTF-8 character (truncated?). "
            "Fix: export it again as UTF-8 text."
        ) from None
    return digest.hexdigest(), lines


def _nul_message(path: Path, opened: Path, kind: str, at: int) -> str:
    size = opened.stat().st_size
    with opened.open("rb") as handle:
        head = handle.read(min(size, CHUNK))
    if head.count(b"\x00") == len(head):
        return (
            f"{path}: the {kind} file is {size} NUL bytes and no text (a file preallocated or "
            "cut short by a crash or a full disk). Fix: export or copy it again."
        )
    return (
        f"{path}, line {_line_at(opened, at)}: NUL byte at byte {at}; this is a binary file "
        f"(or UTF-16 text), not a {kind} CSV. Fix: point at the text export, saved as UTF-8."
    )


def _encoding_message(path: Path, opened: Path, kind: str, at: int, byte: int) -> str:
    return (
        f"{path}, line {_line_at(opened, at)}: byte 0x{byte:02x} at byte {at} is not UTF-8; "
        f"the {kind} file looks like Latin-1 / Windows-1252 text (or binary data). Fix: save "
        "it as UTF-8 (Excel: 'CSV UTF-8'; or `iconv -f latin1 -t utf-8 in.csv > out.csv`)."
    )


def _head_lines(opened: Path) -> list[tuple[int, str]]:
    """(line number, text) of the first lines, as decoded text (the file was scanned)."""
    with opened.open("rb") as handle:
        head = handle.read(SNIFF_BYTES)
    text = head.decode("utf-8-sig", errors="ignore")
    lines = text.splitlines()
    if len(head) == SNIFF_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut off by the byte limit
    return list(enumerate(lines, start=1))


def _fields(line: str, delimiter: str | None) -> list[str]:
    if delimiter is None:
        return line.split()
    return next(csv.reader([line], delimiter=delimiter))


def _choose_delimiter(first: str, sample: list[str], prefer: str) -> str | None:
    """The delimiter that splits the first line into > 1 fields, as the sample rows are split.

    Candidates are tried in preference order (the extension's own delimiter first); None
    (whitespace) comes last. Returns "" when nothing splits the first line.
    """
    candidates = [prefer, *(d for d in DELIMITERS if d != prefer)]
    fallback = ""
    for delimiter in [*candidates, None]:
        width = len(_fields(first, delimiter))
        if width < 2:
            continue
        rows = [len(_fields(line, delimiter)) for line in sample]
        if not rows or max(set(rows), key=rows.count) == width:
            return delimiter
        fallback = fallback or delimiter  # splits the header: let the row check say what is off
    return fallback


def sniff(
    path: Path,
    opened: Path,
    kind: str,
    example: str,
    header: bool | None,
    prefer: str = ",",
    known: frozenset[str] = frozenset(),
    single: bool = False,
) -> Layout:
    """Find the delimiter, the header and where the data starts.

    Args:
        header: True (the first line names the columns), False (none), None (detect: the
            first line holds one of the `known` column names, or is text above numbers).
        prefer: the delimiter to try first (the file extension's: tab for .tsv).
        known: column names that mark a header line when `header` is None.
        single: one column is allowed (a node file of ids only).

    Raises:
        UserInputError: an empty file, or a file whose first line cannot be split.
    """
    lines = _head_lines(opened)
    skip = 0
    for number, line in lines:  # leading comments and blank lines
        if line.strip() and not line.lstrip().startswith(COMMENT):
            break
        skip = number
    content = [(n, line) for n, line in lines[skip:] if line.strip()]
    if not content:
        what = kind[:-1] if kind.endswith("s") else kind
        raise UserInputError(
            f"{path}, line 1: the {kind} file is empty. Fix: start it with a header line "
            f"like '{example}', then one row per {what}."
        )
    first_number, first = content[0]
    delimiter = _choose_delimiter(first, [line for _, line in content[1:SNIFF_LINES]], prefer)
    if delimiter == "" and single:
        delimiter = prefer
    elif delimiter == "":
        raise UserInputError(
            f"{path}, line {first_number}: one field only; the {kind} file needs columns "
            f"separated by commas, tabs, semicolons, '|' or spaces, e.g. '{example}'."
        )
    names = [f.strip() for f in _fields(first, delimiter)]
    if header is None:
        rows = [_fields(line, delimiter) for _, line in content[1:SNIFF_LINES]]
        header = _looks_like_header(names, rows, known)
    return Layout(
        delimiter=delimiter,
        header=names if header else None,
        skip_lines=first_number if header else first_number - 1,
        width=len(names),
    )


NUMBER_PATTERN = r"^\s*[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|inf|infinity)\s*$"
_NUMBER = re.compile(NUMBER_PATTERN, re.IGNORECASE)


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


def _looks_like_header(first: list[str], rows: list[list[str]], known: frozenset[str]) -> bool:
    if all(is_number(f) for f in first):
        return False
    if any(f.lower() in known for f in first):
        return True
    numeric = [
        i for i in range(len(first)) if rows and all(len(r) > i and is_number(r[i]) for r in rows)
    ]
    return any(not is_number(first[i]) for i in numeric)


def line_of_row(opened: Path, skip_lines: int, row: int) -> int:
    """1-based line number of data row `row`, counting rows as pyarrow does (blank lines
    are not rows)."""
    count = -1
    with opened.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if number <= skip_lines or not line.rstrip(b"\r\n"):
                continue
            count += 1
            if count == row:
                return number
    return skip_lines + row + 1


def _rows(opened: Path, layout: Layout) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of every non-blank data line, parsed in Python (error paths)."""
    with opened.open(newline="", encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if number <= layout.skip_lines or not line.rstrip("\r\n"):
                continue
            yield number, _fields(line.rstrip("\r\n"), layout.delimiter)


def _width_error(path: Path, opened: Path, layout: Layout) -> UserInputError | None:
    for number, fields in _rows(opened, layout):
        if not any(f.strip() for f in fields):
            return UserInputError(
                f"{path}, line {number}: a line of spaces only. Fix: delete it (empty lines "
                "are skipped)."
            )
        if len(fields) != layout.width:
            has = "the header has" if layout.header else "the first line has"
            hint = " (quote values that contain the delimiter)" if layout.delimiter else ""
            return UserInputError(
                f"{path}, line {number}: {len(fields)} fields where {has} {layout.width}. "
                f"Fix: give every row the same {layout.width} columns{hint}."
            )
    return None


def read(
    path: Path,
    opened: Path,
    layout: Layout,
    names: list[str],
    types: dict[str, pa.DataType],
    sha256: str,
) -> TextTable:
    """Parse the data rows into a table of the `types` columns (string or float64 each);
    the file's other columns are not read.

    Raises:
        UserInputError: a row of the wrong width or a cell that is not a number, with line.
    """
    if layout.delimiter is None:
        table = _read_whitespace(path, opened, layout, names, types)
    else:
        table = _read_delimited(path, opened, layout, names, types)
    if table.num_rows == 0:
        raise UserInputError(
            f"{path}: the file has a header but no data rows. Fix: add at least one row."
        )
    return TextTable(path, opened, layout, table, sha256)


def batches(
    path: Path, opened: Path, layout: Layout, names: list[str], types: dict[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    """The data rows of the `types` columns, ~1 MiB of the file at a time, so a caller
    that converts each batch holds one batch of text, not the whole file's.

    Raises:
        UserInputError: as `read`.
    """
    if layout.delimiter is None:
        yield from _read_whitespace(path, opened, layout, names, types).to_batches()
        return
    from pyarrow import csv as pacsv

    try:
        reader = pacsv.open_csv(
            pa.OSFile(str(opened), memory_pool=POOL),
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=layout.skip_lines, use_threads=False, block_size=BLOCK
            ),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter),
            convert_options=_convert_options(types),
            memory_pool=POOL,
        )
        yield from reader
    except pa.ArrowInvalid as error:
        raise _explain(path, opened, layout, names, str(error)) from None


def _convert_options(types: dict[str, pa.DataType]):
    from pyarrow import csv as pacsv

    return pacsv.ConvertOptions(
        column_types=types,
        include_columns=list(types),
        null_values=NULLS,
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _read_delimited(
    path: Path, opened: Path, layout: Layout, names: list[str], types: dict[str, pa.DataType]
) -> pa.Table:
    from pyarrow import csv as pacsv

    try:
        return pacsv.read_csv(
            opened,
            read_options=pacsv.ReadOptions(
                column_names=names, skip_rows=layout.skip_lines, use_threads=False, block_size=BLOCK
            ),
            parse_options=pacsv.ParseOptions(delimiter=layout.delimiter),
            convert_options=_convert_options(types),
            memory_pool=POOL,
        )
    except pa.ArrowInvalid as error:
        raise _explain(path, opened, layout, names, str(error)) from None


def _explain(
    path: Path, opened: Path, layout: Layout, names: list[str], message: str
) -> UserInputError:
    """Rebuild pyarrow's complaint as file/line/fix (without echoing its row text)."""
    width = _width_error(path, opened, layout)
    if width is not None:
        return width
    found = re.search(r"column #(\d+)", message)
    if found and int(found.group(1)) < len(names):
        column = int(found.group(1))
        for number, fields in _rows(opened, layout):
            cell = fields[column].strip() if column < len(fields) else ""
            if cell.lower() not in MISSING and not is_number(cell) and not _special(cell):
                return not_a_number(f"{path}, line {number}", names[column], fields[column])
    return UserInputError(
        f"{path}: could not be read as a {layout.delimiter_name}-separated table "
        f"({message.split(':')[0]}). Fix: check that every row has the header's columns."
    )


def _special(cell: str) -> bool:
    return cell.lower().lstrip("+-") in ("inf", "infinity")


def not_a_number(where: str, column: str, cell: str) -> UserInputError:
    hint = ""
    if re.fullmatch(r"\s*-?\d+,\d+\s*", cell):
        hint = " It looks like a decimal comma: write 1.5, not 1,5."
    return UserInputError(
        f"{where}, column {column!r}: {cell!r} is not a number. Fix: features must be numeric; "
        f"one-hot encode categories into 0/1 columns, or drop the column.{hint}"
    )


def _read_whitespace(
    path: Path, opened: Path, layout: Layout, names: list[str], types: dict[str, pa.DataType]
) -> pa.Table:
    """Whitespace-separated lines: read each line whole, split in pyarrow, check the widths."""
    import numpy as np
    import pyarrow.compute as pc
    from pyarrow import csv as pacsv

    lines = pacsv.read_csv(
        opened,
        read_options=pacsv.ReadOptions(
            column_names=["line"],
            skip_rows=layout.skip_lines,
            use_threads=False,
            block_size=BLOCK,
        ),
        parse_options=pacsv.ParseOptions(delimiter="\x1f", quote_char=False),
        convert_options=pacsv.ConvertOptions(column_types={"line": pa.string()}),
        memory_pool=POOL,
    ).column("line")
    tokens = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(lines))
    lengths = pc.list_value_length(tokens).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(lengths != layout.width)
    if bad.size:
        line = line_of_row(opened, layout.skip_lines, int(bad[0]))
        if lengths[bad[0]] == 0:
            raise UserInputError(
                f"{path}, line {line}: a line of spaces only. Fix: delete it (empty lines are "
                "skipped)."
            )
        raise UserInputError(
            f"{path}, line {line}: {lengths[bad[0]]} fields where the first line has "
            f"{layout.width}. Fix: give every row the same {layout.width} columns."
        )
    flat = pc.list_flatten(tokens)
    columns = {}
    for j, name in enumerate(names):
        if name not in types:
            continue
        cells = flat.take(pa.array(np.arange(j, len(flat), layout.width)))
        if types[name] == pa.string():
            columns[name] = cells
            continue
        missing = pc.is_in(pc.utf8_lower(cells), value_set=pa.array(MISSING))
        cells = pc.if_else(missing, pa.scalar(None, pa.string()), cells)
        try:
            columns[name] = pc.cast(cells, types[name])
        except pa.ArrowInvalid:
            for row, cell in enumerate(cells.to_pylist()):
                if not is_number(cell) and not _special(cell) and cell.lower() not in MISSING:
                    line = line_of_row(opened, layout.skip_lines, row)
                    raise not_a_number(f"{path}, line {line}", name, cell) from None
            raise
    return pa.table(columns)
