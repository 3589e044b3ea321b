# pickle_peer.py — the CPython end of the pickle interoperability tests (test_pickle.c).
# Usage: python3 pickle_peer.py <mode> <fd>; fd is a socket wrapped in a
# multiprocessing.connection.Connection.
#
# mode "judge": for every value of CORPUS and every protocol 0..5, sends
#   [name, repr(value), pickle.dumps(value, protocol)] as three byte messages; the C
#   side answers with its repr and its own pickles for protocols 2..5 (or "ERR:..."
#   when it refused the pickle). Checks that C's repr equals Python's and that each
#   C pickle loads back to the same value. Values named "refuse:..." must be
#   refused. Prints every mismatch; exits 1 if there was any.
# mode "echo": receives pickles from the C side, answers each with
#   [repr(value), pickle.dumps(value, p) for p in 0..5]; stops at b"end".
# mode "objects": conn.recv() objects and conn.send() back (x, repr(x)) until None.
import math
import pickle
import sys
from multiprocessing.connection import Connection
from multiprocessing.managers import Token
import queue


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class SubList(list):
    pass


def corpus():
    shared = [1, 2]
    s = "shared string"
    c = [
        ("None", None), ("True", True), ("False", False),
        ("empty tuple", ()), ("empty list", []), ("empty dict", {}), ("empty set", set()),
        ("empty frozenset", frozenset()), ("empty str", ""), ("empty bytes", b""),
        ("empty bytearray", bytearray()),
        ("nested", {"a": [1, (2, 3.5, None)], "b": {"c": {"d": [[], {}]}}, 7: "seven"}),
        ("request", ("7f3802039be0", "put", (4242,), {})),
        ("request kw", ("7f3802039be0", "get", (), {"timeout": 1.5, "block": True})),
        ("reply", ("#RETURN", None)),
        ("tuple4", (1, 2, 3, 4)), ("tuple1", ("x",)), ("list 1000+", list(range(1500))),
        ("dict 1000+", {str(i): i for i in range(1200)}),
        ("set ints", {3, 1, 2, 100, -5}), ("frozenset ints", frozenset({4, 5, 6})),
        ("set strs", {"a", "b", "c"}), ("mixed keys", {1: "a", 2.5: "b", (1, 2): "c", None: 0, True: 1}),
        ("str quote1", "it's"), ("str quote2", 'say "hi"'), ("str both", "it's \"x\""),
        ("str escapes", "tab\there\nnl\rcr\\ bs \x00 \x1f \x7f"),
        ("str latin1", "caf\xe9 \xa0 \xad \xff"), ("str bmp", "\u65e5\u672c \u2028 \u200b \ufeff"),
        ("str astral", "\U0001F600 \U0001D11E \U000E0001 \U0010FFFF"),
        ("str lone surrogates", "a\ud800b\udfffc\udc00"), ("str surrogate pair chars", "\ud83d\ude00"),
        ("str long", "x" * 300), ("str 70k", "y" * 70000),
        ("bytes", b"\x00\x01'\"\\\t\n\r\x7f\x80\xff abc"), ("bytes quote", b"it's"),
        ("bytes long", bytes(range(256)) * 2), ("bytearray", bytearray(b"ab\x00\xff'")),
        ("float 0", 0.0), ("float -0", -0.0), ("float 1", 1.0), ("float 3.5", 3.5),
        ("float 0.1", 0.1), ("float 1/3", 1 / 3), ("float 1e16", 1e16), ("float 1e15", 123456789012345.6),
        ("float 1e-4", 0.0001), ("float 1e-5", 0.00001), ("float big", 1.7976931348623157e308),
        ("float subnormal", 5e-324), ("float subnormal2", 2.2250738585072014e-308 / 3),
        ("float inf", math.inf), ("float -inf", -math.inf), ("float nan", math.nan),
        ("float 2**53+", 9007199254740993.0), ("float neg", -2.5e-10),
        ("complex", complex(1, 2)), ("complex imag", 2j), ("complex -0", complex(-0.0, 1)),
        ("complex nan", complex(math.nan, math.inf)), ("complex neg0 imag", complex(1, -0.0)),
        ("complex 0 -0", complex(0.0, -0.0)), ("complex big", complex(1e20, 1e-20)),
        ("shared list", [shared, shared]), ("shared str", (s, s, [s])),
        ("shared dict", {"x": shared, "y": (shared,)}),
        ("ValueError", ValueError("boom")), ("ValueError accents", ValueError("boom \xe9")),
        ("KeyError", KeyError("k")), ("Empty", queue.Empty()), ("Full", queue.Full()),
        ("TimeoutError", TimeoutError()), ("exception args", RuntimeError("a", 1)),
        ("Token", Token("EchoChild", ("127.0.0.1", 15210), "7f3802003750")),
        ("nan in list", [math.nan]), ("deep", [[[[[[[[[[1]]]]]]]]]]),
        ("refuse:recursive list", None), ("refuse:recursive dict", None),
        ("refuse:recursive tuple", None),
    ]
    ints = [0, 1, -1, 127, 128, 255, 256, -256, -255, 65535, 65536, -65536,
            2**31 - 1, 2**31, -2**31, -2**31 - 1, 2**32, 2**62 - 1, 2**62, -2**62, -2**62 - 1,
            2**63 - 1, 2**63, -2**63, -2**63 - 1, 2**64 - 1, 2**64, -2**64, 2**100, -(2**100),
            2**2100, -(2**2100), 2**2100 - 1, 10**50, -10**50 + 1]
    c += [("int %d" % i if abs(i) < 2**70 else "int big %d" % n, i) for n, i in enumerate(ints)]
    rl = []
    rl.append(rl)
    rd = {}
    rd["self"] = rd
    rt_inner = []
    rt = (rt_inner,)
    rt_inner.append(rt)
    out = []
    for name, v in c:
        if name == "refuse:recursive list":
            v = rl
        elif name == "refuse:recursive dict":
            v = rd
        elif name == "refuse:recursive tuple":
            v = rt
        out.append((name, v))
    return out


def same(a, b, depth=0):
    """Value equality as the C model keeps it: types and values, NaN equal to NaN,
    exceptions by type and args."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    if isinstance(a, BaseException):
        return same(a.args, b.args)
    if isinstance(a, Token):
        return (a.typeid, a.address, a.id) == (b.typeid, b.address, b.id)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, depth + 1) for x, y in zip(a, b))
    if isinstance(a, dict):
        return len(a) == len(b) and all(k in b and same(v, b[k], depth + 1) for k, v in a.items())
    return a == b


def judge(conn):
    failures = 0
    checked = 0
    for name, original in corpus():
        for proto in range(0, 6):
            value = original
            data = pickle.dumps(value, proto)
            conn.send_bytes(name.encode())
            conn.send_bytes(repr(value).encode("utf-8", "surrogatepass") if not name.startswith("refuse:") else b"")
            conn.send_bytes(data)
            answer = conn.recv_bytes()
            if name.startswith("refuse:"):
                if not answer.startswith(b"ERR:"):
                    print("FAIL %s p%d: C accepted a recursive pickle" % (name, proto))
                    failures += 1
                elif b"recursive" not in answer:
                    print("FAIL %s p%d: wrong error %r" % (name, proto, answer))
                    failures += 1
                continue
            if answer.startswith(b"ERR:"):
                print("FAIL %s p%d: C refused it: %s" % (name, proto, answer[4:].decode(errors="replace")))
                failures += 1
                continue
            # The reference is what Python itself reads from the pickle (below protocol 3
            # CPython maps some names to Python 2 ones, e.g. TimeoutError to OSError).
            # A set's pickle lists its items in the original's order, which a set
            # rebuilt from them need not keep: C's repr follows the pickle.
            value = pickle.loads(data)
            shown = original if same(original, value) else value
            mine = repr(shown).encode("utf-8", "surrogatepass")
            if answer != mine:
                print("FAIL %s p%d: repr\n  python: %r\n  C:      %r" % (name, proto, mine, answer))
                failures += 1
            for cproto in range(2, 6):
                cp = conn.recv_bytes()
                try:
                    back = pickle.loads(cp)
                except Exception as e:
                    print("FAIL %s p%d: C pickle p%d does not load: %r %r" % (name, proto, cproto, e, cp[:80]))
                    failures += 1
                    continue
                if not same(value, back):
                    print("FAIL %s p%d: C pickle p%d loads as %r" % (name, proto, cproto, back))
                    failures += 1
                if name == "shared list" and back[0] is not back[1]:
                    print("FAIL %s: sharing lost in C pickle p%d" % (name, cproto))
                    failures += 1
                checked += 1
    conn.send_bytes(b"end")
    print("judge: %d C pickles checked, %d failures (python %s)" % (checked, failures, sys.version.split()[0]))
    return 1 if failures else 0


def echo(conn):
    while True:
        data = conn.recv_bytes()
        if data == b"end":
            return 0
        value = pickle.loads(data)
        conn.send_bytes(repr(value).encode("utf-8", "surrogatepass"))
        for p in range(0, 6):
            conn.send_bytes(pickle.dumps(value, p))


def objects(conn):
    while True:
        x = conn.recv()
        if x is None:
            conn.send(None)
            return 0
        conn.send((x, repr(x)))


def main():
    mode, fd = sys.argv[1], int(sys.argv[2])
    conn = Connection(fd)
    rc = {"judge": judge, "echo": echo, "objects": objects}[mode](conn)
    conn.close()
    sys.exit(rc)


main()
