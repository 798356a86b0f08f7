"""Input discovery and the up-front checks: formats, readability, schemas, model signature.

Everything here runs before any work starts; every problem is an `InputError` (exit 2).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from batch.lines import Scanner, TextOptions
from batch.storage import is_uri, list_uri, open_input, parquet_source
from scorer.models.loading import required_columns

SAMPLE = 1 << 20  # bytes of a CSV / JSON Lines file whose rows decide its column types

FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class InputError(Exception):
    """Inputs that cannot be scored: one clear message, exit code 2."""


@dataclass(frozen=True)
class InputFile:
    path: str  # absolute path (or URI)
    name: str  # what the output's `file` column says: path relative to the --input it came from
    size: int
    mtime_ns: int

    @property
    def fmt(self) -> str | None:
        return FORMATS.get(Path(self.path).suffix.lower())


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base: list[str] = []
    for part in parts:
        if glob.has_magic(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def discover(inputs: list[str], exclude: Path | None = None) -> list[InputFile]:
    """Files named by --input values (file, folder or glob), in argument order then sorted; no duplicates.
    Files under `exclude` (the output folder) are never inputs: a second run must not read the
    first one's predictions."""
    seen: set[str] = set()
    out: list[InputFile] = []
    for raw in inputs:
        if is_uri(raw):
            try:
                remote = list_uri(raw)
            except OSError as exc:
                raise InputError(f"input {raw}: cannot be listed ({exc})") from None
            if not remote:
                raise InputError(f"input {raw}: no such file or folder, or the pattern matches no file")
            for r in remote:
                if r.uri not in seen:
                    seen.add(r.uri)
                    out.append(InputFile(r.uri, r.name, r.size, r.mtime_ns))
            continue
        p = Path(raw).expanduser()
        if glob.has_magic(raw):
            base = _glob_base(raw).resolve()
            found = sorted(Path(x).resolve() for x in glob.glob(str(p), recursive=True))
            found = [f for f in found if f.is_file()]
            pairs = [(f, str(f.relative_to(base)) if f.is_relative_to(base) else f.name) for f in found]
            if not pairs:
                raise InputError(f"input {raw}: the pattern matches no file")
        elif p.is_dir():
            base = p.resolve()
            found = sorted(f for f in base.rglob("*") if f.is_file() and not _hidden(f.relative_to(base)))
            pairs = [(f, str(f.relative_to(base))) for f in found]
            if not pairs:
                raise InputError(f"input {raw}: the folder holds no file")
        elif p.is_file():
            pairs = [(p.resolve(), p.name)]
            if exclude is not None and pairs[0][0].is_relative_to(exclude):
                raise InputError(f"input {raw}: lies in the output folder {exclude}")
        else:
            raise InputError(f"input {raw}: no such file or folder")
        if exclude is not None:
            pairs = [(f, name) for f, name in pairs if not f.is_relative_to(exclude)]
            if not pairs:
                raise InputError(f"input {raw}: holds no file outside the output folder {exclude}")
        for f, name in pairs:
            key = str(f)
            if key in seen:
                continue
            seen.add(key)
            try:
                st = f.stat()
                with open(f, "rb"):
                    pass
            except OSError as exc:
                raise InputError(f"input {f}: cannot be read ({exc.strerror or exc})") from None
            out.append(InputFile(key, name, st.st_size, st.st_mtime_ns))
    return out


def _hidden(rel: Path) -> bool:
    return any(part.startswith((".", "_")) for part in rel.parts)


def tabular_format(files: list[InputFile]) -> str:
    fmts = {f.fmt for f in files}
    unknown = [f.path for f in files if f.fmt is None]
    if unknown:
        raise InputError(f"input {unknown[0]}: not a CSV, Parquet or JSON Lines file (by extension: "
                         f".csv, .parquet, .jsonl); use input_mode: files to pass such files to a scoring script")
    if len(fmts) > 1:
        raise InputError(f"inputs mix formats ({', '.join(sorted(str(x) for x in fmts))}); one job reads one format")
    return fmts.pop()  # type: ignore[return-value]


def read_schema(f: InputFile, fmt: str, text: TextOptions | None = None) -> pa.Schema:
    """The file's schema, read cheaply (Parquet footer; first block of CSV / JSON Lines, where
    blank lines and rows that would fail on their own are left out of the type inference)."""
    if f.size == 0:
        raise InputError(f"input {f.path}: the file is empty")
    try:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(parquet_source(f.path))
        return _text_schema(f, fmt, (text or TextOptions()).for_format(fmt))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"input {f.path}: cannot be read as {fmt} ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''})") from None


def _sample(f: InputFile, opts: TextOptions) -> tuple[bytes, list[tuple[int, int]]]:
    """The first SAMPLE bytes and the spans of its rows that do not fail on their own."""
    with open_input(f.path) as fh:
        head = bytes(fh.read(SAMPLE))
    sc = Scanner(opts)
    rows = [sc.feed(head)] + ([sc.finish()] if len(head) < SAMPLE and not sc.open_quote() else [])
    spans = [(int(s), int(e)) for r in rows for s, e, blank, bad in zip(r.start, r.end, r.blank, r.bad, strict=True)
             if not blank and not bad]
    return head, spans


def _csv_sample(f: InputFile, opts: TextOptions, column_types: dict[str, pa.DataType] | None = None) -> pa.Table:
    head, spans = _sample(f, opts)
    if not spans or spans[0][0] != 0:
        raise InputError(f"input {f.path}: the header line is unreadable (longer than {opts.max_line_bytes} "
                         "bytes, or an unbalanced double quote)")
    import pyarrow.csv as pc

    sample = b"".join(head[s:e] if head[e - 1:e] == b"\n" else head[s:e] + b"\n" for s, e in spans)
    parse = pc.ParseOptions(newlines_in_values=opts.newlines_in_values, invalid_row_handler=lambda row: "skip")
    return pc.read_csv(pa.BufferReader(sample), parse_options=parse,
                       read_options=pc.ReadOptions(block_size=len(sample) + 1),
                       convert_options=pc.ConvertOptions(column_types=column_types or {}))


def _text_schema(f: InputFile, fmt: str, opts: TextOptions) -> pa.Schema:
    if fmt == "csv":
        return _csv_sample(f, opts).schema
    head, spans = _sample(f, opts)
    import json

    import pyarrow.json as pj

    good = []
    for s, e in spans:
        try:
            if isinstance(json.loads(head[s:e]), dict):
                good.append(head[s:e].rstrip(b"\r\n") + b"\n")
        except ValueError:
            continue
    if not good:
        raise InputError(f"input {f.path}: no readable JSON object in its first {SAMPLE} bytes")
    sample = b"".join(good)
    try:
        return pj.read_json(pa.BufferReader(sample), read_options=pj.ReadOptions(block_size=len(sample) + 1)).schema
    except pa.ArrowInvalid:  # the sample's lines disagree on a type: the first line decides, others fail alone
        return pj.read_json(pa.BufferReader(good[0])).schema


def _kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "string"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    if pa.types.is_null(t):
        return "null"
    return str(t)


def unify(schemas: list[tuple[InputFile, pa.Schema]]) -> pa.Schema:
    """One schema for all files; numbers of different widths meet at the widest (float64 over int)."""
    first_file, first = schemas[0]
    fields = {f.name: f.type for f in first}
    for f, s in schemas[1:]:
        if set(s.names) != set(fields):
            missing = sorted(set(fields) - set(s.names))
            extra = sorted(set(s.names) - set(fields))
            raise InputError(
                f"input {f.path}: its columns differ from {first_file.path}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; extra {', '.join(extra)}" if extra else ""))
        for field in s:
            have = fields[field.name]
            if have == field.type:
                continue
            k1, k2 = _kind(have), _kind(field.type)
            if "null" in (k1, k2):
                fields[field.name] = field.type if k1 == "null" else have
            elif k1 == k2 == "number":
                if pa.types.is_floating(have) or pa.types.is_floating(field.type):
                    fields[field.name] = pa.float64()
                else:
                    fields[field.name] = pa.int64()
            else:
                raise InputError(f"input {f.path}: column {field.name!r} is {field.type} there but {have} "
                                 f"in {first_file.path}")
    return pa.schema([(n, t) for n, t in fields.items()])


_MLFLOW_KIND = {
    "double": "number", "float": "number", "long": "number", "integer": "number",
    "boolean": "boolean", "string": "string", "datetime": "datetime", "binary": "binary",
}


NUMERIC_SHARE = 0.99  # a CSV column whose sampled values are numbers at least this often is numeric


def relax_numbers(schema: pa.Schema, files: list[InputFile], fmt: str, text: TextOptions,
                  signature: Any) -> pa.Schema:
    """CSV columns the model wants as numbers that type inference called strings because of a few
    bad cells in the sample are read as float64: those cells then fail their rows alone, instead
    of the whole job being refused. A column that is mostly text still is refused."""
    if fmt != "csv" or signature is None or signature.inputs is None:
        return schema
    try:
        wanted = {s.name for s in signature.inputs.inputs
                  if _MLFLOW_KIND.get(str(getattr(s.type, "name", s.type)).lower()) == "number"}
    except Exception:
        return schema
    cols = [f.name for f in schema if f.name in wanted and pa.types.is_string(f.type)]
    if not cols:
        return schema
    numeric = set(cols)
    for f in files:
        table = _csv_sample(f, text.for_format(fmt), dict.fromkeys(cols, pa.string()))
        for c in list(numeric):
            values = [v for v in table.column(c).to_pylist() if v not in _NULLS]
            ok = sum(1 for v in values if _is_number(v))
            if not values or ok < NUMERIC_SHARE * len(values):
                numeric.discard(c)
    return pa.schema([pa.field(f.name, pa.float64()) if f.name in numeric else f for f in schema])


_NULLS = {None, "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A",
          "NA", "NULL", "NaN", "n/a", "nan", "null"}  # Arrow's default null_values


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def check_signature(schema: pa.Schema, signature: Any, keep_columns: list[str]) -> list[str]:
    """Problems between the input schema and the model signature (empty when they fit)."""
    problems: list[str] = []
    missing_keep = [c for c in keep_columns if c not in schema.names]
    if missing_keep:
        problems.append(f"--keep-columns names columns the inputs lack: {', '.join(missing_keep)}")
    if signature is None or signature.inputs is None:
        return problems
    try:
        specs = signature.inputs.inputs
    except Exception:
        return problems
    if not all(getattr(s, "name", None) for s in specs):
        return problems  # tensor signature without names: nothing to check by column
    have = {f.name: f.type for f in schema}
    missing = [name for name in required_columns(signature.inputs) if name not in have]
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        problems.append(f"inputs lack column(s) the model signature requires: {shown} "
                        f"(inputs have {', '.join(schema.names[:10])}{'...' if len(schema.names) > 10 else ''})")
    for s in specs:
        if s.name not in have:
            continue
        want = _MLFLOW_KIND.get(str(getattr(s.type, "name", s.type)).lower())
        got = _kind(have[s.name])
        if want and got != "null" and got != want:
            problems.append(f"column {s.name!r}: the model expects {want} ({s.type}) but the inputs hold "
                            f"{have[s.name]}")
    return problems


def fit_schema(schema: pa.Schema, signature: Any) -> pa.Schema:
    """Integer columns the model wants as floating point are read as float64, so that a later
    block of a CSV holding "1.5" in a column whose first rows were whole numbers still parses."""
    try:
        wanted = {s.name: str(getattr(s.type, "name", s.type)).lower() for s in signature.inputs.inputs}
    except Exception:
        return schema
    fields = []
    for f in schema:
        if pa.types.is_integer(f.type) and wanted.get(f.name) in ("double", "float"):
            f = pa.field(f.name, pa.float64())
        fields.append(f)
    return pa.schema(fields)


def columns_to_read(schema: pa.Schema, model_columns: list[str] | None, keep: list[str]) -> list[str] | None:
    """Columns the actors read: the signature's plus the kept ones (None = all)."""
    if model_columns is None:
        return None
    cols = [c for c in model_columns if c in schema.names]
    cols += [c for c in keep if c not in cols]
    return cols


def file_fingerprints(files: list[InputFile]) -> list[dict[str, Any]]:
    return [{"path": f.path, "size": f.size, "mtime_ns": f.mtime_ns} for f in files]


