#!/usr/bin/env python3
"""Record in a WebAssembly component which tool made it.

    scripts/add-producers.py COMPONENT.wasm FIELD=NAME=VERSION ...

e.g. `processed-by=componentize-py=0.25.1 language=Python=3.12`.

Merges the entries into the component's own (top-level) `producers` custom
section, the tool-conventions section `pagehook plugin audit` reads
(https://github.com/WebAssembly/tool-conventions/blob/main/ProducersSection.md),
adding the section when there is none. Entries already there are kept; an
entry with the same field and name gets the new version. Nothing else in the
file changes: custom sections carry no code, so the component runs the same.

Why: some toolchains record only the tools they used inside (componentize-py
0.25.1 names wit-component and component-init-transform, not itself), so a
security reviewer could not tell the language or the tool from the audit.
Stdlib only, so the Python plugin's build.sh can run it with the Python it
already needs.
"""

import sys

MAGIC = b"\0asm"
COMPONENT_VERSION = b"\x0d\x00\x01\x00"
FIELDS = ("language", "processed-by", "sdk")


def leb(data, i):
    result = shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def enc(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def name(data, i):
    n, i = leb(data, i)
    return data[i : i + n].decode("utf-8"), i + n


def enc_name(s):
    b = s.encode("utf-8")
    return enc(len(b)) + b


def read_producers(payload):
    fields, i = {}, 0
    count, i = leb(payload, i)
    for _ in range(count):
        field, i = name(payload, i)
        n, i = leb(payload, i)
        entries = fields.setdefault(field, {})
        for _ in range(n):
            tool, i = name(payload, i)
            version, i = name(payload, i)
            entries[tool] = version
    if i != len(payload):
        raise ValueError("producers section has trailing bytes")
    return fields


def write_producers(fields):
    out = bytearray(enc(len(fields)))
    for field, entries in fields.items():
        out += enc_name(field) + enc(len(entries))
        for tool, version in entries.items():
            out += enc_name(tool) + enc_name(version)
    return bytes(out)


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    path, adds = argv[1], []
    for arg in argv[2:]:
        parts = arg.split("=", 2)
        if len(parts) != 3 or parts[0] not in FIELDS or not parts[1]:
            sys.exit(f"add-producers: `{arg}` is not FIELD=NAME=VERSION with FIELD one of {', '.join(FIELDS)}")
        adds.append(parts)
    data = open(path, "rb").read()
    if data[:4] != MAGIC or data[4:8] != COMPONENT_VERSION:
        sys.exit(f"add-producers: {path} is not a WebAssembly component")
    sections, i = [], 8
    while i < len(data):
        start = i
        sid = data[i]
        size, i = leb(data, i + 1)
        sections.append((sid, data[start:i], data[i : i + size]))
        i += size
    fields, keep = {}, []
    for sid, header, body in sections:
        if sid == 0:
            section_name, j = name(body, 0)
            if section_name == "producers":
                for field, entries in read_producers(body[j:]).items():
                    fields.setdefault(field, {}).update(entries)
                continue
        keep.append(header + body)
    for field, tool, version in adds:
        fields.setdefault(field, {})[tool] = version
    body = enc_name("producers") + write_producers(fields)
    out = data[:8] + b"".join(keep) + b"\x00" + enc(len(body)) + body
    with open(path, "wb") as f:
        f.write(out)


if __name__ == "__main__":
    main(sys.argv)
