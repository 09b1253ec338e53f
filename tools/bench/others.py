"""Ray or Dask doing the bench's job workloads: `others.py dask|ray tiny|round N`.

Prints one line (jobs per second, or microseconds per round trip), or exits
1 with the reason when the system is not installed or fails to start.
Both run on this machine with 2 worker processes, like M/s with 2 slaves.
"""
import sys
import time


def inc(x):
    return x + 1


def with_dask(kind, n):
    from dask.distributed import Client, LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        client.submit(inc, 0).result()  # warm up
        start = time.perf_counter()
        if kind == "tiny":
            client.gather(client.map(inc, range(n), pure=False))
        else:
            for i in range(n):
                client.submit(inc, i, pure=False).result()
        return time.perf_counter() - start


def with_ray(kind, n):
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    remote_inc = ray.remote(inc)
    ray.get(remote_inc.remote(0))
    start = time.perf_counter()
    if kind == "tiny":
        ray.get([remote_inc.remote(i) for i in range(n)])
    else:
        for i in range(n):
            ray.get(remote_inc.remote(i))
    elapsed = time.perf_counter() - start
    ray.shutdown()
    return elapsed


def main():
    system, kind, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if kind == "round":
        n = min(n, 2000)
    try:
        elapsed = {"dask": with_dask, "ray": with_ray}[system](kind, n)
    except ImportError as e:
        print(f"not installed ({e.name})", file=sys.stderr)
        return 1
    if kind == "tiny":
        print(f"{n / elapsed:10.0f} jobs/s")
    else:
        print(f"{elapsed / n * 1e6:8.1f} us per round trip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
