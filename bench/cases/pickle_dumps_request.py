# pickle_dumps_request, CPython side: pickle.dumps of a manager request with the
# default protocol (4 on 3.8-3.13), the C accelerator (_pickle).
import pickle
import time

N = 200000
req = ("7f3802039be0", "put", (4242,), {})
dumps = pickle.dumps
t0 = time.perf_counter()
for _ in range(N):
    dumps(req)
t = time.perf_counter() - t0
print(f"{t / N * 1e6:.6g} us")
