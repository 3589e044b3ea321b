#!/usr/bin/env python3
"""The layer check run by `make check`: reads every #include "..." of src/ and
include/mproc/ and fails when a file includes one of a higher layer, one of
another folder of its own layer, or when includes form a circle.

The layers, from the bottom up (README: Layout). Folders on one line share a
layer and may include each other's headers only where PEERS allows it."""
import os
import re
import sys

LAYERS = [
    ("core", "linux"),         # errors, deadlines, descriptors, arena; kernel calls
    ("pickle",),               # Python values <-> bytes, no I/O
    ("process", "sync"),       # processes; locks, values, shared memory
    ("queue",),                # connections, wait, queues (bytes and objects)
    ("pool", "subprocess"),    # pools of workers; external commands
    ("net",),                  # listeners, clients, authentication
    ("manager",),              # manager servers, clients and proxies
]
PEERS = {("core", "linux"), ("linux", "core")}

# Each public header belongs to the layer of the folder that implements it.
PUBLIC = {
    "export": "core", "version": "core", "error": "core", "timeout": "core",
    "object": "pickle", "pickle": "pickle",
    "process": "process", "sync": "sync", "shared": "sync",
    "connection": "queue", "queue": "queue", "object_io": "queue",
    "pool": "pool", "subprocess": "subprocess", "shlex": "subprocess",
    "listener": "net", "net": "net", "manager": "manager", "sync_manager": "manager",
}

RANK = {folder: i for i, group in enumerate(LAYERS) for folder in group}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def folder_of(path):
    """The layer folder of a repository path, or None for files outside the layers."""
    parts = path.split("/")
    if parts[0] == "src" and len(parts) > 2:
        return parts[1]
    if parts[:2] == ["include", "mproc"]:
        return PUBLIC.get(os.path.splitext(parts[2])[0], "?" + parts[2])
    return None


def resolve(inc):
    """The repository path of a quoted include."""
    return "include/" + inc if inc.startswith("mproc/") else "src/" + inc


def main(root):
    os.chdir(root)
    files = []
    for top in ("src", "include/mproc"):
        for dirpath, _, names in os.walk(top):
            files += [os.path.join(dirpath, n) for n in names if n.endswith((".c", ".h"))]
    errors = []
    graph = {}
    for f in sorted(files):
        me = folder_of(f)
        if me is None or me.startswith("?") or me not in RANK:
            errors.append(f"{f}: not in any layer (add its folder or header to tests/check_layers.py)")
            continue
        with open(f, encoding="utf-8") as fh:
            incs = INCLUDE.findall(fh.read())
        graph[f] = []
        for inc in incs:
            target = resolve(inc)
            if not os.path.exists(target):
                errors.append(f"{f}: includes \"{inc}\", which does not exist")
                continue
            graph[f].append(target)
            them = folder_of(target)
            if them not in RANK:
                errors.append(f"{f}: includes \"{inc}\", which is in no layer")
            elif RANK[them] > RANK[me]:
                errors.append(f"{f} (layer {me}) includes \"{inc}\" of the higher layer {them}")
            elif RANK[them] == RANK[me] and them != me and (me, them) not in PEERS:
                errors.append(f"{f} ({me}) includes \"{inc}\" of {them}, a separate folder of its layer")
    # A circle of includes: depth-first search with colours.
    colour = {}

    def visit(node, stack):
        colour[node] = 1
        for nxt in graph.get(node, ()):
            if colour.get(nxt) == 1:
                loop = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                errors.append("circle of includes: " + " -> ".join(loop))
            elif colour.get(nxt) is None:
                visit(nxt, stack + [nxt])
        colour[node] = 2

    for node in sorted(graph):
        if node not in colour:
            visit(node, [node])
    for e in errors:
        print(e)
    if errors:
        return 1
    print(f"layers: {len(graph)} files, every include points down or within its folder")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
