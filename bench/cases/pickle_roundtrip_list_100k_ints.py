# pickle_roundtrip_list_100k_ints, CPython side: pickle.loads(pickle.dumps(x)) of
# list(range(100000)) with the default protocol.
import pickle
import time

N = 100
x = list(range(100000))
t0 = time.perf_counter()
for _ in range(N):
    pickle.loads(pickle.dumps(x))
t = time.perf_counter() - t0
print(f"{t / N * 1e6:.6g} us")
