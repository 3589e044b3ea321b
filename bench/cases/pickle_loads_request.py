# pickle_loads_request, CPython side: pickle.loads of a manager request as CPython
# itself pickles it (default protocol), the C accelerator (_pickle).
import pickle
import time

N = 200000
data = pickle.dumps(("7f3802039be0", "put", (4242,), {}))
loads = pickle.loads
t0 = time.perf_counter()
for _ in range(N):
    loads(data)
t = time.perf_counter() - t0
print(f"{t / N * 1e6:.6g} us")
