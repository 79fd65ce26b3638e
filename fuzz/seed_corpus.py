#!/usr/bin/env python3
"""Writes the protocol test vectors into fuzz/corpus/<target>/ as seeds.

Run from anywhere: `python3 fuzz/seed_corpus.py`. The corpus is not committed
(fuzz/.gitignore); libFuzzer adds what it finds to the same folders.

Per target it writes:
- every captured message or frame alone (`<file>-<line>`);
- each one after a login (`<file>-<line>-login`), so that fresh sessions,
  which refuse data before a login, decode it too;
- each capture's rows in order as one stream (`<file>-stream-<n>`): logins,
  then data, as a device sends them on one connection.
"""

import json
import pathlib
from collections import defaultdict

FUZZ = pathlib.Path(__file__).resolve().parent
VECTORS = FUZZ.parent / "connectors" / "protocols" / "tests" / "vectors"

# A GT06 login (0x01) of IMEI 864717003283581, and a Teltonika IMEI handshake.
LOGINS = {
    "gt06": bytes.fromhex("78780d01086471700328358100093f040d0a"),
    "teltonika": bytes.fromhex("000f333536333037303432343431303133"),
}

TARGETS = {
    "gt06": ["gt06.jsonl"],
    "teltonika": ["teltonika.jsonl", "teltonika_docs.jsonl", "teltonika_derived.jsonl"],
}


def payload(row):
    if row.get("encoding") == "text":
        return row["payload"].encode()
    return bytes.fromhex(row["payload"])


def main():
    for target, files in TARGETS.items():
        out = FUZZ / "corpus" / target
        out.mkdir(parents=True, exist_ok=True)
        written = 0
        for name in files:
            streams = defaultdict(list)
            stem = name.removesuffix(".jsonl")
            for line, text in enumerate((VECTORS / name).read_text().splitlines(), 1):
                if not text.strip():
                    continue
                row = json.loads(text)
                if "payload" not in row:
                    continue
                data = payload(row)
                (out / f"{stem}-{line}").write_bytes(data)
                written += 1
                if row.get("transport", "tcp") == "tcp":
                    (out / f"{stem}-{line}-login").write_bytes(LOGINS[target] + data)
                    written += 1
                streams[row.get("source", "")].append((row.get("seq", 0), line, data))
            for n, rows in enumerate(streams.values()):
                if len(rows) > 1:
                    stream = b"".join(data for _, _, data in sorted(rows))
                    (out / f"{stem}-stream-{n}").write_bytes(stream)
                    written += 1
        print(f"{out}: {written} seeds")


if __name__ == "__main__":
    main()
