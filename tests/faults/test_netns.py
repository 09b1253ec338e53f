"""Several hosts (issue 12, "Tests with real components"): a master and
slaves in network namespaces of their own, joined by veth pairs on a
bridge, each with its own address in a private 10.x range. The secret is
required off loopback and a wrong one is refused; a slave whose link is
taken down mid-run (a partition) is noticed by heartbeats and its jobs run
again elsewhere, with the output exact; a slave that comes back later
joins and gets jobs.

The namespaces (names unique to the run, so parallel runs never clash)
are made by the module's fixture and deleted by its finalizer, however the
tests end; the bridge lives in a namespace of its own, so nothing is added
to the machine's own network. Needs root and `ip` (iproute2, installed
when missing); skipped otherwise, with the reason given."""
from __future__ import annotations

import os
import pathlib
import re
import secrets
import shutil
import subprocess
import time
import warnings

import pytest

import fakepeer as fp
from harness import build_program_dir
from test_faults import c_rem, lcg

HERE = pathlib.Path(__file__).resolve().parent / "netns"
NET = "10.77.%d.0/24"           # a /24 of its own per run (third byte random)
SPREAD_OUT = f"{sum(c_rem(lcg(k, 1000), 1000) for k in range(300))}\n"
HEARTBEAT_S = 1.0


def _skip(reason: str):
    warnings.warn(f"test_netns skipped: {reason}")
    pytest.skip(reason)


def _ip(*args, check=True, timeout=20) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(map(str, args))}: {r.stderr.strip()}")
    return r


def _need_ip() -> None:
    if os.geteuid() != 0:
        _skip("network namespaces need root (ip netns add)")
    if not shutil.which("ip"):
        try:
            subprocess.run(["apt-get", "install", "-y", "iproute2"],
                           capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as e:
            _skip(f"ip is missing and apt-get install iproute2 failed: {e}")
        if not shutil.which("ip"):
            _skip("ip is missing and apt-get install -y iproute2 did not "
                  "provide it")


class Net:
    """A bridge in namespace `sw` and, for each node, a namespace with one
    end of a veth pair (eth0, its address) whose other end is on the
    bridge."""

    def __init__(self, tag: str, third: int):
        self.tag, self.third = tag, third
        self.sw = f"{tag}-sw"
        self.made: list[str] = []
        self.addrs: dict[str, str] = {}

    def ns(self, node: str) -> str:
        return f"{self.tag}-{node}"

    def add_ns(self, name: str) -> None:
        _ip("netns", "add", name)
        self.made.append(name)
        _ip("-n", name, "link", "set", "lo", "up")

    def build(self, nodes: list[str]) -> None:
        self.add_ns(self.sw)
        _ip("-n", self.sw, "link", "add", "br0", "type", "bridge",
            "forward_delay", 0)
        _ip("-n", self.sw, "link", "set", "br0", "up")
        for k, node in enumerate(nodes, start=1):
            ns = self.ns(node)
            self.add_ns(ns)
            port = f"p{k}"
            _ip("-n", self.sw, "link", "add", port, "type", "veth", "peer",
                "name", "eth0", "netns", ns)
            _ip("-n", self.sw, "link", "set", port, "master", "br0")
            _ip("-n", self.sw, "link", "set", port, "up")
            addr = f"10.77.{self.third}.{k}"
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            self.addrs[node] = addr

    def link(self, node: str, state: str) -> None:
        """Take a node's link down (a partition) or up again."""
        _ip("-n", self.ns(node), "link", "set", "eth0", state)

    def run(self, node: str, cmd) -> list[str]:
        """`cmd` as run inside the node's namespace."""
        return ["ip", "netns", "exec", self.ns(node), *map(str, cmd)]

    def teardown(self) -> None:
        for name in reversed(self.made):
            _ip("netns", "del", name, check=False)
        self.made.clear()


@pytest.fixture(scope="module")
def net(request):
    _need_ip()
    tag = f"ms{os.getpid() % 100000}{secrets.token_hex(2)}"
    n = Net(tag, secrets.randbelow(250) + 1)
    request.addfinalizer(n.teardown)      # even when building fails halfway
    try:
        n.build(["m", "s1", "s2", "s3"])
    except RuntimeError as e:
        if "Operation not permitted" in str(e) or "Permission" in str(e):
            _skip(f"cannot make network namespaces here: {e}")
        raise
    return n


@pytest.fixture(scope="module")
def progs(tmp_path_factory):
    return build_program_dir(HERE, tmp_path_factory.mktemp("netns"))


def _master(start, net, progs, *args, token=True):
    return start(net.run("m", [f"{progs['spread']}-master", "--listen",
                               f"{net.addrs['m']}:0", "--spawn", 0, *args]),
                 env=fp.TOKEN_ENV if token else {})


def _slave(start, net, progs, node, addr, *args, token=fp.TOKEN):
    return start(net.run(node, [f"{progs['spread']}-slave", "--master", addr,
                                "--threads", 1, *args]),
                 env={"MS_TOKEN": token} if token else {})


def _listening(m) -> str:
    return m.wait_err(r"listening on (\S+)").group(1)


def test_off_loopback_the_secret_is_required_and_checked(start, net, progs):
    m = _master(start, net, progs, token=False)
    assert m.finish(timeout=10) == 2, m.err
    assert re.search(r"refusing to listen on 10\.77\.\d+\.1:0 without a "
                     r"shared secret", m.err), m.err

    m = _master(start, net, progs, "--verbose")
    addr = _listening(m)
    assert addr.startswith(net.addrs["m"] + ":"), addr
    wrong = _slave(start, net, progs, "s1", addr, token="not the secret")
    wrong.wait_err(rf"refused by master {re.escape(addr)}: authentication "
                   r"failed")
    m.wait_err(rf"refused slave {re.escape(net.addrs['s1'])}:\d+ \(pid "
               rf"{wrong.pid}\): authentication failed")
    wrong.kill()
    good = [_slave(start, net, progs, node, addr) for node in ("s1", "s2")]
    assert m.finish(timeout=60) == 0, m.err
    assert m.out == SPREAD_OUT
    for s in good:
        assert s.finish() == 0, s.err


def _run(start, net, progs, partition=False):
    """One run with a slave in each of s1..s3. With `partition`, s3's link
    goes down once the run is under way, then up again after the master
    lost it, and s3 starts a slave again. Returns (seconds, master Proc,
    figures)."""
    m = _master(start, net, progs, "--verbose", "--stats",
                "--heartbeat-timeout", HEARTBEAT_S)
    addr = _listening(m)
    slaves = {node: _slave(start, net, progs, node, addr)
              for node in ("s1", "s2", "s3")}
    m.wait_err(r"slave \d+ joined", count=3, timeout=15)
    t0 = time.monotonic()
    figures = {}
    if partition:
        time.sleep(0.8)
        net.link("s3", "down")
        t_down = time.monotonic()
        lost = m.wait_err(rf"lost slave \d+ at {re.escape(net.addrs['s3'])}"
                          r":\d+ .*heartbeat timeout\)(?:; (\d+) of its jobs "
                          r"to run again)?", timeout=10)
        figures["noticed after"] = time.monotonic() - t_down
        figures["jobs run again"] = int(lost.group(1) or 0)
        # The cut-off slave gives up on its silent master too.
        assert slaves["s3"].finish(timeout=10) == 1
        net.link("s3", "up")
        slaves["s3"] = _slave(start, net, progs, "s3", addr)
        m.wait_err(rf"slave \d+ joined from {re.escape(net.addrs['s3'])}",
                   timeout=10)
    assert m.finish(timeout=90) == 0, m.err
    took = time.monotonic() - t0
    assert m.out == SPREAD_OUT, m.err
    for s in slaves.values():
        assert s.finish() == 0, s.err
    return took, m, figures


def test_a_partitioned_slave_is_noticed_and_one_that_comes_back_joins(
        start, net, progs):
    calm, _, _ = _run(start, net, progs)
    took, m, fig = _run(start, net, progs, partition=True)
    cost = took - calm
    print(f"partition of 1 slave of 3: calm run {calm:.2f} s, with the "
          f"partition {took:.2f} s (cost {cost:.2f} s); noticed "
          f"{fig['noticed after']:.2f} s after the link went down "
          f"(heartbeat timeout {HEARTBEAT_S} s), {fig['jobs run again']} "
          f"job(s) run again")
    assert fig["noticed after"] < HEARTBEAT_S + 1.0, fig
    # The slave that came back ran jobs: its line in --stats (the run
    # printed a line for each slave that left, the cut-off one included).
    back = [int(k) for k in re.findall(
        rf"stats: slave \d+ at {re.escape(net.addrs['s3'])}:\d+ .*?: ran "
        r"(\d+) job", m.err)]
    assert len(back) == 2 and back[-1] > 0, m.err
    # A third of the run's capacity is lost for the heartbeat timeout and
    # its jobs in flight run again: the run costs no more than that (the
    # jobs take ~30 ms; 1 s of slack for a loaded machine).
    assert cost < HEARTBEAT_S + 1.0 + calm / 2, (calm, took, fig)
