"""The M/s wire protocol (docs/protocol.md) as the tests speak it: framing,
the handshake, and a fake slave and a fake master built on them.

This module is the one place in tests/ that knows the handshake's bytes
(CHALLENGE, HELLO, WELCOME and their field offsets): when the handshake
changes, it changes here. Tests that throw garbage build it from `frame`,
`header` and the message sizes below rather than spelling bytes out.

Every message is a 12-byte header [ordinal; jid; length] of little-endian
u32s and `length` bytes of payload; a control message (ordinal 0) starts
with its kind byte.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct

HEADER = struct.Struct("<III")
VERSION = 1
(CHALLENGE, HELLO, WELCOME, REFUSE, FAILURE, CANCEL, CANCELLED, HEARTBEAT,
 GOODBYE) = range(1, 10)
# Payload sizes, the kind byte included.
CHALLENGE_SIZE = 1 + 4 + 4 + 32 + 32
HELLO_SIZE = 1 + 4 + 32 + 4 + 4 + 32
WELCOME_SIZE = 1 + 4 + 4 + 4
FLAG_SECRET = 1          # CHALLENGE flags bit 0: the master wants a proof
DEFAULT_PID = 4242       # the pid a fake slave claims
# The secret tests give a master and its hand-started slaves (SPEC 10: no
# unauthenticated loopback), through MS_TOKEN as scripts do.
TOKEN = "fake-peer-secret"
TOKEN_ENV = {"MS_TOKEN": TOKEN}


def proof(secret: str, nonce: bytes, fingerprint: bytes) -> bytes:
    """What a slave proves in its HELLO (runtime/c/auth.c ms_auth_proof)."""
    return hmac.new(secret.encode(), b"M/s auth v1" + nonce + fingerprint,
                    hashlib.sha256).digest()


# ------------------------------------------------------------ framing

def header(ordinal: int, jid: int, length: int) -> bytes:
    """A header alone (its length may lie about what follows)."""
    return HEADER.pack(ordinal, jid, length)


def frame(ordinal: int, jid: int, payload: bytes = b"") -> bytes:
    return header(ordinal, jid, len(payload)) + payload


def control(kind: int, payload: bytes = b"", jid: int = 0) -> bytes:
    """A control message: ordinal 0, the kind byte, then `payload`."""
    return frame(0, jid, bytes([kind]) + payload)


def recv_exact(sock, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the peer closed the connection")
        data += chunk
    return data


def recv_msg(sock) -> tuple[int, int, bytes]:
    """(ordinal, jid, payload) of the next message."""
    ordinal, jid, length = HEADER.unpack(recv_exact(sock, HEADER.size))
    return ordinal, jid, recv_exact(sock, length)


def next_message(sock) -> tuple[int, int, bytes]:
    """The next message that is not a HEARTBEAT."""
    while True:
        ordinal, jid, payload = recv_msg(sock)
        if not (ordinal == 0 and payload == bytes([HEARTBEAT])):
            return ordinal, jid, payload


def closed_by_peer(sock, timeout: float = 3) -> bool:
    """Whether the peer closes the connection within `timeout` seconds
    (whatever it sends meanwhile is read and dropped)."""
    sock.settimeout(timeout)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def connect(addr: str, timeout: float = 5) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=timeout)
    s.settimeout(timeout)
    return s


# ---------------------------------------------------------- handshake

def challenge(fingerprint: bytes, nonce: bytes | None = None, flags: int = 0,
              version: int = VERSION) -> bytes:
    """A framed CHALLENGE (a fresh random nonce unless given)."""
    nonce = os.urandom(32) if nonce is None else nonce
    return control(CHALLENGE, struct.pack("<II", version, flags) +
                   fingerprint + nonce)


def parse_challenge(payload: bytes) -> tuple[int, int, bytes, bytes]:
    """(version, flags, fingerprint, nonce) of a CHALLENGE payload."""
    assert payload[0] == CHALLENGE and len(payload) == CHALLENGE_SIZE, payload
    version, flags = struct.unpack_from("<II", payload, 1)
    return version, flags, payload[9:41], payload[41:73]


def hello(fingerprint: bytes, threads: int = 1, pid: int = DEFAULT_PID,
          version: int = VERSION, proof: bytes = bytes(32)) -> bytes:
    """A framed HELLO; the proof is all zeros (no secret) unless given."""
    return control(HELLO, struct.pack("<I", version) + fingerprint +
                   struct.pack("<II", threads, pid) + proof)


def parse_hello(payload: bytes) -> tuple[int, bytes, int, int, bytes]:
    """(version, fingerprint, threads, pid, proof) of a HELLO payload."""
    assert payload[0] == HELLO and len(payload) == HELLO_SIZE, payload
    (version,) = struct.unpack_from("<I", payload, 1)
    threads, pid = struct.unpack_from("<II", payload, 37)
    return version, payload[5:37], threads, pid, payload[45:77]


def welcome(heartbeat_ms: int = 3000, max_message: int = 1 << 20,
            slave_id: int = 1) -> bytes:
    return control(WELCOME, struct.pack("<III", heartbeat_ms, max_message,
                                        slave_id))


def refuse(reason: str) -> bytes:
    return control(REFUSE, reason.encode())


def slave_handshake(sock, threads: int = 1,
                    fingerprint: bytes | None = None,
                    secret: str | None = None) -> bytes:
    """Play a slave through the handshake on `sock`: read the CHALLENGE,
    answer HELLO with the master's own fingerprint (public) unless another
    is given, proving `secret` if given (else a proof of zeros). Returns
    the master's reply payload, a WELCOME or a REFUSE."""
    ordinal, _, payload = recv_msg(sock)
    assert ordinal == 0, f"expected a CHALLENGE, got job {ordinal}"
    version, _, master_fp, nonce = parse_challenge(payload)
    sock.sendall(hello(fingerprint or master_fp, threads=threads,
                       version=version,
                       proof=(proof(secret, nonce, master_fp) if secret
                              else bytes(32))))
    ordinal, _, reply = recv_msg(sock)
    assert ordinal == 0, f"expected a WELCOME or REFUSE, got job {ordinal}"
    return reply


class FakeSlave:
    """A connection to a master, past the handshake, answering nothing by
    itself. `reply` is what the master answered the HELLO with; with
    require_welcome (the default) it must be a WELCOME."""

    def __init__(self, addr: str, threads: int = 1,
                 fingerprint: bytes | None = None, timeout: float = 5,
                 require_welcome: bool = True, secret: str | None = None):
        self.sock = connect(addr, timeout)
        self.reply = slave_handshake(self.sock, threads, fingerprint, secret)
        if require_welcome:
            assert self.reply[0] == WELCOME, self.reply

    def send(self, ordinal: int, jid: int, payload: bytes) -> None:
        self.sock.sendall(frame(ordinal, jid, payload))

    def answer_int(self, ordinal: int, jid: int, value: int) -> None:
        self.send(ordinal, jid, struct.pack("<q", value))

    def next_message(self) -> tuple[int, int, bytes]:
        return next_message(self.sock)

    def close(self) -> None:
        self.sock.close()


class FakeMaster:
    """A listening socket on loopback playing the master for one slave
    connection at a time. `fingerprint` is what its CHALLENGE claims:
    zeros until a test learns the real one (`learn_fingerprint`)."""

    def __init__(self, timeout: float = 10):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.fingerprint = bytes(32)

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        conn.settimeout(self.timeout)
        return conn

    def challenge(self, conn, fingerprint: bytes | None = None) -> bytes:
        """Send a CHALLENGE, read the HELLO; the slave's fingerprint."""
        conn.sendall(challenge(fingerprint or self.fingerprint))
        ordinal, _, payload = recv_msg(conn)
        assert ordinal == 0, f"expected a HELLO, got job {ordinal}"
        return parse_hello(payload)[1]

    def learn_fingerprint(self, conn) -> None:
        """The program's fingerprint from the HELLO on `conn`, which is then
        closed (the slave finds its master runs another program)."""
        self.fingerprint = self.challenge(conn)
        conn.close()

    def handshake(self, conn, heartbeat_ms: int = 3000,
                  max_message: int = 1 << 20) -> None:
        """CHALLENGE, HELLO and WELCOME: the slave on `conn` has joined."""
        self.challenge(conn)
        conn.sendall(welcome(heartbeat_ms, max_message))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
