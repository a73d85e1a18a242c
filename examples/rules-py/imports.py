"""Lists what a WebAssembly component imports, one `KIND NAME` a line.

Reads only the top-level import sections of the component binary, so it
needs nothing beyond the standard library. Used by build.sh to refuse a
component that imports more than the world's own types.

    python3 imports.py component.wasm
"""

import sys


def leb_u32(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def name(data: bytes, pos: int) -> tuple[str, int]:
    length, pos = leb_u32(data, pos)
    return data[pos : pos + length].decode("utf-8"), pos + length


KINDS = {0x00: "module", 0x01: "func", 0x02: "value", 0x03: "type", 0x04: "component", 0x05: "instance"}


def extern_desc(data: bytes, pos: int) -> int:
    """Skips one externdesc and returns the position after it."""
    kind = data[pos]
    pos += 1
    if kind == 0x00:  # core module: 0x11 typeidx
        _, pos = leb_u32(data, pos + 1)
    elif kind in (0x01, 0x04, 0x05):  # func, component, instance: typeidx
        _, pos = leb_u32(data, pos)
    elif kind == 0x02:  # value: eq typeidx | valtype
        bound = data[pos]
        pos += 1
        if bound == 0x00 or data[pos] < 0x64:
            _, pos = leb_u32(data, pos)
        else:
            pos += 1
    elif kind == 0x03:  # type: eq typeidx | sub resource
        bound = data[pos]
        pos += 1
        if bound == 0x00:
            _, pos = leb_u32(data, pos)
    else:
        raise ValueError(f"unknown externdesc kind {kind:#x} at {pos - 1}")
    return pos


def component_imports(data: bytes) -> list[tuple[str, str]]:
    """The component's imports as (kind, name), kind being e.g. `instance`
    for an interface and `type` for a type the world uses from one."""
    if data[:4] != b"\0asm" or data[6:8] != b"\x01\x00":
        raise ValueError("not a WebAssembly component")
    imports = []
    pos = 8
    while pos < len(data):
        section = data[pos]
        size, pos = leb_u32(data, pos + 1)
        end = pos + size
        if section == 10:  # component import section
            count, p = leb_u32(data, pos)
            for _ in range(count):
                tag = data[p]
                import_name, p = name(data, p + 1)
                if tag == 0x01:  # legacy form with a version suffix
                    _, p = name(data, p)
                kind = KINDS.get(data[p], hex(data[p]))
                p = extern_desc(data, p)
                imports.append((kind, import_name))
        pos = end
    return imports


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        for kind, import_name in component_imports(f.read()):
            print(kind, import_name)
