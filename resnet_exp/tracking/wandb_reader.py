"""Read back what a W&B run wrote locally, without a server. An offline run is only its
transaction log `run-<id>.wandb` (wandb 0.31 ships no reader for it): LevelDB's log format (32 KiB
blocks of CRC-checked chunks after a 7-byte ":W&B" header), each record a serialized
`wandb.proto.wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)  # ident, magic, version
_BLOCK = 32768
_CHUNK_HEADER = 7  # crc32 (4), length (2), type (1)
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4
_CHUNK_CRC = {t: zlib.crc32(bytes([t])) for t in (_FULL, _FIRST, _MIDDLE, _LAST)}
# (our key, the field of wandb's RunRecord)
_RUN_FIELDS = (("run_id", "run_id"), ("project", "project"), ("entity", "entity"),
               ("name", "display_name"), ("group", "run_group"), ("notes", "notes"),
               ("job_type", "job_type"))  # fmt: skip


def read_run_file(path: str | Path, include_internal: bool = False) -> dict[str, Any]:
    """Decode one `run-*.wandb` file in plain Python: `run_id, project, entity, name, group,
    job_type, tags, notes, config`, `history` (one dict per `log()` call), `summary`, `exit_code`
    (None if it never finished), `path`; wandb's own `_*` keys only with `include_internal`."""
    run: dict[str, Any] = dict.fromkeys(key for key, _ in _RUN_FIELDS)
    run.update(tags=[], config={}, history=[], summary={}, exit_code=None, path=Path(path))
    for record in iter_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            for key, name in _RUN_FIELDS:
                run[key] = getattr(r, name) or run[key]
            if r.tags:
                run["tags"] = list(r.tags)
            _apply_updates(run["config"], r.config.update, r.config.remove)
        elif kind == "config":
            _apply_updates(run["config"], record.config.update, record.config.remove)
        elif kind == "history":
            row: dict[str, Any] = {}
            _apply_updates(row, record.history.item, ())
            run["history"].append(row)
        elif kind == "summary":
            _apply_updates(run["summary"], record.summary.update, record.summary.remove)
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    if not include_internal:
        for key in ("config", "summary"):
            run[key] = {k: v for k, v in run[key].items() if not k.startswith("_")}
        run["history"] = [
            {k: v for k, v in row.items() if not k.startswith("_")} for row in run["history"]
        ]
    return run


def is_complete(path: str | Path) -> bool:
    """Whether a `.wandb` file ends with the run's exit record: wandb 0.31 writes the buffered
    log when the stream closes, *after* `run.finish()` returns (until then maybe just a header)."""
    try:
        payloads = list(iter_payloads(Path(path).read_bytes()))
    except (OSError, ValueError):
        return False
    return bool(payloads) and _record(payloads[-1]).WhichOneof("record_type") == "exit"


def iter_records(path: str | Path) -> Iterator[Any]:
    """Yield each `wandb_internal_pb2.Record` of a `.wandb` file (a truncated tail is ignored)."""
    for payload in iter_payloads(Path(path).read_bytes()):
        yield _record(payload)


def _record(payload: bytes) -> Any:
    from wandb.proto import wandb_internal_pb2  # optional and slow: only when a file is read

    record = wandb_internal_pb2.Record()
    record.ParseFromString(payload)
    return record


def iter_payloads(data: bytes) -> Iterator[bytes]:
    """Split a LevelDB-log-format byte string (with the W&B header) into record payloads."""
    if data[: len(_HEADER)] != _HEADER:
        raise ValueError("not a W&B transaction log (bad header)")
    pos = len(_HEADER)
    pending: bytes | None = None
    while pos + _CHUNK_HEADER <= len(data):
        left_in_block = _BLOCK - pos % _BLOCK
        if left_in_block < _CHUNK_HEADER:  # block trailer padding
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0:  # zero-filled (preallocated) rest of block
            pos += left_in_block
            continue
        start = pos + _CHUNK_HEADER
        chunk = data[start : start + length]
        if len(chunk) < length:  # writer was interrupted mid-chunk
            return
        if kind not in _CHUNK_CRC or zlib.crc32(chunk, _CHUNK_CRC[kind]) != crc:
            raise ValueError(f"corrupt W&B transaction log at byte {pos}")
        pos = start + length
        if kind == _FULL:
            pending = None
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE and pending is not None:
            pending += chunk
        elif kind == _LAST and pending is not None:
            yield pending + chunk
            pending = None


def _apply_updates(target: dict[str, Any], updates: Any, removes: Any) -> None:
    """Apply wandb `{key | nested_key, value_json}` items (config/summary/history) to a dict."""
    for item in updates:
        keys = [item.key] if item.key else list(item.nested_key)
        if not keys:
            continue
        node = target
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        node[keys[-1]] = json.loads(item.value_json) if item.value_json else None
    for item in removes:
        keys = [item.key] if item.key else list(item.nested_key)
        node = target
        for key in keys[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and keys:
            node.pop(keys[-1], None)
