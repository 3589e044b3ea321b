# pickle_roundtrip_dict_10k_str, CPython side: pickle.loads(pickle.dumps(x)) of a
# dict of 10000 str keys and str values, default protocol.
import pickle
import time

N = 200
x = {f"key{i}": f"value{i}" for i in range(10000)}
t0 = time.perf_counter()
for _ in range(N):
    pickle.loads(pickle.dumps(x))
t = time.perf_counter() - t0
print(f"{t / N * 1e6:.6g} us")
