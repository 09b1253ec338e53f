"""The M/s wire protocol (docs/protocol.md) as the tests speak it: framing,
the handshake (protocol version 3, with version 2's proofs of the shared
secret both ways), the protection of messages after it (AES-256-GCM under
HKDF session keys), and a fake slave and a fake master built on them.

This module is the one place in tests/ that knows the handshake's bytes
(CHALLENGE, HELLO, WELCOME and their field offsets) and the protection:
when either changes, it changes here. Tests that throw garbage build it
from `frame`, `header` and the message sizes below rather than spelling
bytes out, and send it through a `Link`, which seals whole frames on a
protected connection and passes anything else as it is.

Every message is a 12-byte header [ordinal; jid; length] of little-endian
u32s and `length` bytes of payload; a control message (ordinal 0) starts
with its kind byte. Sealed, `length` counts the ciphertext and its 16-byte
tag.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

HEADER = struct.Struct("<III")
VERSION = 3
(CHALLENGE, HELLO, WELCOME, REFUSE, FAILURE, CANCEL, CANCELLED, HEARTBEAT,
 GOODBYE, OUTPUT, WHERE) = range(1, 12)
# OUTPUT's stream byte: print, eprint, a u32 count of lines dropped.
STREAM_STDOUT, STREAM_STDERR, STREAM_DROPPED = 1, 2, 3
# Payload sizes, the kind byte included.
CHALLENGE_SIZE = 1 + 4 + 4 + 32 + 32
HELLO_SIZE = 1 + 4 + 32 + 4 + 4 + 32 + 32
WELCOME_SIZE = 1 + 4 + 4 + 4 + 32
FLAG_AUTH = 1            # CHALLENGE flags bit 0: proofs both ways, sealing
TAG = 16                 # AES-GCM tag after a sealed payload
DEFAULT_PID = 4242       # the pid a fake slave claims
# The secret the tests give masters and slaves (MS_TOKEN).
TOKEN = "test-secret-0123"
TOKEN_ENV = {"MS_TOKEN": TOKEN}


# ------------------------------------------------------------- crypto

def proof(secret: str | bytes, label: str, nonce_m: bytes, nonce_s: bytes,
          fingerprint: bytes, *fields: int) -> bytes:
    """HMAC-SHA256(secret, label || nonce_m || nonce_s || fingerprint ||
    each field as a u32le): a HELLO's ("M/s slave v2": CHALLENGE flags,
    version, threads, pid) or a WELCOME's ("M/s master v2": heartbeat, max
    message, slave id)."""
    key = secret.encode() if isinstance(secret, str) else secret
    msg = (label.encode() + nonce_m + nonce_s + fingerprint +
           b"".join(struct.pack("<I", f) for f in fields))
    return hmac.new(key, msg, hashlib.sha256).digest()


def hkdf(secret: bytes, salt: bytes, info: bytes, n: int = 32) -> bytes:
    """HKDF-SHA256 (RFC 5869), written out."""
    prk = hmac.new(salt, secret, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-n // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:n]


def session_keys(secret: str | bytes, nonce_m: bytes,
                 nonce_s: bytes) -> tuple[bytes, bytes]:
    """(master to slave, slave to master) keys of a connection."""
    key = secret.encode() if isinstance(secret, str) else secret
    salt = nonce_m + nonce_s
    return hkdf(key, salt, b"M/s v2 m2s"), hkdf(key, salt, b"M/s v2 s2m")


class Channel:
    """One direction of a protected connection: AES-256-GCM, the nonce 4
    zero bytes and the u64le message counter, the sealed header as AAD."""

    def __init__(self, key: bytes):
        self.aead = AESGCM(key)
        self.seq = 0

    def _nonce(self) -> bytes:
        nonce = bytes(4) + struct.pack("<Q", self.seq)
        self.seq += 1
        return nonce

    def seal(self, ordinal: int, jid: int, payload: bytes) -> bytes:
        head = header(ordinal, jid, len(payload) + TAG)
        return head + self.aead.encrypt(self._nonce(), payload, head)

    def open(self, head: bytes, body: bytes) -> bytes:
        """The payload; raises InvalidTag on a forged or misplaced one."""
        return self.aead.decrypt(self._nonce(), body, head)


def split_frames(data: bytes) -> tuple[list[tuple[int, int, bytes]], bytes]:
    """The whole frames at the start of `data` and what is left after them
    (a header whose length runs past the end, or less than a header)."""
    frames, at = [], 0
    while len(data) - at >= HEADER.size:
        ordinal, jid, length = HEADER.unpack_from(data, at)
        if len(data) - at - HEADER.size < length:
            break
        frames.append((ordinal, jid, data[at + HEADER.size:
                                          at + HEADER.size + length]))
        at += HEADER.size + length
    return frames, data[at:]


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


def chatter(ordinal: int, payload: bytes) -> bool:
    """A HEARTBEAT, or the WHERE a slave sends once after WELCOME: what
    next_message skips."""
    return ordinal == 0 and (payload == bytes([HEARTBEAT])
                             or payload[:1] == bytes([WHERE]))


def next_message(sock) -> tuple[int, int, bytes]:
    """The next message that is not a HEARTBEAT or a WHERE."""
    while True:
        ordinal, jid, payload = recv_msg(sock)
        if not chatter(ordinal, payload):
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
          version: int = VERSION, nonce: bytes | None = None,
          proof: bytes = bytes(32)) -> bytes:
    """A framed HELLO (a fresh nonce unless given); the proof is all zeros
    (no secret) unless given."""
    nonce = os.urandom(32) if nonce is None else nonce
    return control(HELLO, struct.pack("<I", version) + fingerprint +
                   struct.pack("<II", threads, pid) + nonce + proof)


def parse_hello(payload: bytes) -> tuple[int, bytes, int, int, bytes, bytes]:
    """(version, fingerprint, threads, pid, nonce, proof) of a HELLO."""
    assert payload[0] == HELLO and len(payload) == HELLO_SIZE, payload
    (version,) = struct.unpack_from("<I", payload, 1)
    threads, pid = struct.unpack_from("<II", payload, 37)
    return version, payload[5:37], threads, pid, payload[45:77], payload[77:109]


def welcome(heartbeat_ms: int = 3000, max_message: int = 1 << 20,
            slave_id: int = 1, proof: bytes = bytes(32)) -> bytes:
    return control(WELCOME, struct.pack("<III", heartbeat_ms, max_message,
                                        slave_id) + proof)


def refusal_proof(secret: str | bytes, nonce_m: bytes, nonce_s: bytes,
                  fingerprint: bytes, reason: bytes) -> bytes:
    """HMAC-SHA256(secret, "M/s refuse v2" || nonce_m || nonce_s ||
    fingerprint || reason): what ends a REFUSE under AUTH."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, b"M/s refuse v2" + nonce_m + nonce_s + fingerprint +
                    reason, hashlib.sha256).digest()


def refuse(reason: str, proof: bytes = b"") -> bytes:
    """A framed REFUSE; under AUTH a real master ends it with its proof
    (refusal_proof)."""
    return control(REFUSE, reason.encode() + proof)


class Link:
    """A connection past the handshake; sealed both ways when `tx` and
    `rx` (Channels) are given. `sock` is the raw socket, for bytes that are
    to go out exactly as they are."""

    where = b""  # the WHERE payload FakeMaster.handshake read

    def __init__(self, sock, tx: Channel | None = None,
                 rx: Channel | None = None):
        self.sock, self.tx, self.rx = sock, tx, rx

    def wire(self, data: bytes) -> bytes:
        """`data` as it goes out: on a protected link each whole frame in it
        sealed, and anything after the last whole one (a header that lies
        about its length, a truncated frame) as it is."""
        if self.tx is None:
            return data
        frames, rest = split_frames(data)
        return b"".join(self.tx.seal(*f) for f in frames) + rest

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(self.wire(data))

    def send(self, ordinal: int, jid: int, payload: bytes) -> None:
        self.sendall(frame(ordinal, jid, payload))

    def recv_msg(self) -> tuple[int, int, bytes]:
        """(ordinal, jid, payload) of the next message, opened."""
        head = recv_exact(self.sock, HEADER.size)
        ordinal, jid, length = HEADER.unpack(head)
        body = recv_exact(self.sock, length)
        if self.rx is None:
            return ordinal, jid, body
        try:
            return ordinal, jid, self.rx.open(head, body)
        except InvalidTag:
            raise AssertionError(f"message {self.rx.seq - 1} fails to open")

    def next_message(self) -> tuple[int, int, bytes]:
        """The next message that is not a HEARTBEAT or a WHERE."""
        while True:
            ordinal, jid, payload = self.recv_msg()
            if not chatter(ordinal, payload):
                return ordinal, jid, payload

    def close(self) -> None:
        self.sock.close()


def slave_handshake(sock, threads: int = 1, fingerprint: bytes | None = None,
                    secret: str | None = None, pid: int = DEFAULT_PID):
    """Play a slave through the handshake on `sock`: read the CHALLENGE,
    answer HELLO with the master's own fingerprint (public) unless another
    is given, proving `secret` if the master asks and one is given (zeros
    otherwise). Returns (the master's reply payload, a WELCOME or a REFUSE;
    a Link, protected when the master authenticated). A WELCOME's proof is
    checked."""
    ordinal, _, payload = recv_msg(sock)
    assert ordinal == 0, f"expected a CHALLENGE, got job {ordinal}"
    version, flags, master_fp, nonce_m = parse_challenge(payload)
    nonce_s = os.urandom(32)
    auth = bool(flags & FLAG_AUTH) and secret is not None
    fingerprint = fingerprint or master_fp
    mine = proof(secret, "M/s slave v2", nonce_m, nonce_s, fingerprint, flags,
                 version, threads, pid) if auth else bytes(32)
    sock.sendall(hello(fingerprint, threads=threads, pid=pid,
                       version=version, nonce=nonce_s, proof=mine))
    ordinal, _, reply = recv_msg(sock)
    assert ordinal == 0, f"expected a WELCOME or REFUSE, got job {ordinal}"
    if reply[0] != WELCOME or not auth:
        return reply, Link(sock)
    hb, mx, sid = struct.unpack_from("<III", reply, 1)
    want = proof(secret, "M/s master v2", nonce_m, nonce_s, master_fp, hb,
                 mx, sid)
    assert hmac.compare_digest(want, reply[13:45]), "bad master proof"
    m2s, s2m = session_keys(secret, nonce_m, nonce_s)
    return reply, Link(sock, tx=Channel(s2m), rx=Channel(m2s))


class FakeSlave(Link):
    """A connection to a master, past the handshake, answering nothing by
    itself. `reply` is what the master answered the HELLO with; with
    require_welcome (the default) it must be a WELCOME. With `secret` it
    proves it (masters with a secret refuse slaves without) and, once
    welcomed, seals and opens every message."""

    def __init__(self, addr: str, threads: int = 1,
                 fingerprint: bytes | None = None, timeout: float = 5,
                 require_welcome: bool = True, secret: str | None = TOKEN):
        sock = connect(addr, timeout)
        self.reply, link = slave_handshake(sock, threads, fingerprint, secret)
        super().__init__(sock, link.tx, link.rx)
        if require_welcome:
            assert self.reply[0] == WELCOME, self.reply

    def answer_int(self, ordinal: int, jid: int, value: int) -> None:
        self.send(ordinal, jid, struct.pack("<q", value))


class FakeMaster:
    """A listening socket on loopback playing the master for one slave
    connection at a time. `fingerprint` is what its CHALLENGE claims:
    zeros until a test learns the real one (`learn_fingerprint`). With
    `secret` it asks for proofs and proves it in WELCOME (then seals);
    with `claim_auth` and no secret it asks without knowing it (an
    impostor); otherwise it asks for nothing (an --insecure master)."""

    def __init__(self, timeout: float = 10, secret: str | None = None,
                 claim_auth: bool = False):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.fingerprint = bytes(32)
        self.secret = secret
        self.flags = FLAG_AUTH if secret is not None or claim_auth else 0

    def accept(self) -> socket.socket:
        conn, _ = self.sock.accept()
        conn.settimeout(self.timeout)
        return conn

    def challenge(self, conn, fingerprint: bytes | None = None) -> bytes:
        """Send a CHALLENGE, read the HELLO; the slave's fingerprint."""
        self.nonce_m = os.urandom(32)
        self.claimed = fingerprint or self.fingerprint
        conn.sendall(challenge(self.claimed, self.nonce_m, self.flags))
        ordinal, _, payload = recv_msg(conn)
        assert ordinal == 0, f"expected a HELLO, got job {ordinal}"
        self.hello = parse_hello(payload)
        return self.hello[1]

    def learn_fingerprint(self, conn) -> None:
        """The program's fingerprint from the HELLO on `conn`, which is then
        refused and closed (the slave exits; closed without a REFUSE, or
        refused without the proof of a secret it expects, it would connect
        again)."""
        self.fingerprint = self.challenge(conn)
        try:
            self.refuse(conn, "the fake master only learns fingerprints")
        except OSError:
            pass
        conn.close()

    def refuse(self, conn, reason: str) -> None:
        """REFUSE the slave whose HELLO `challenge` read, with the proof of
        the secret when the fake master has one."""
        proof = b""
        if self.secret is not None:
            proof = refusal_proof(self.secret, self.nonce_m, self.hello[4],
                                  self.claimed, reason.encode())
        conn.sendall(refuse(reason, proof))

    def welcome(self, conn, heartbeat_ms: int = 3000,
                max_message: int = 1 << 20) -> Link:
        """WELCOME the slave whose HELLO `challenge` read (with the master's
        proof: a real one with a secret, a made-up one without)."""
        nonce_s = self.hello[4]
        if self.secret is not None:
            mine = proof(self.secret, "M/s master v2", self.nonce_m, nonce_s,
                         self.claimed, heartbeat_ms, max_message, 1)
        else:
            mine = os.urandom(32) if self.flags else bytes(32)
        conn.sendall(welcome(heartbeat_ms, max_message, proof=mine))
        if self.secret is None:
            return Link(conn)
        m2s, s2m = session_keys(self.secret, self.nonce_m, nonce_s)
        return Link(conn, tx=Channel(m2s), rx=Channel(s2m))

    def handshake(self, conn, heartbeat_ms: int = 3000,
                  max_message: int = 1 << 20) -> Link:
        """CHALLENGE, HELLO and WELCOME: the slave on `conn` has joined;
        the WHERE it sends first is read (link.where, its payload)."""
        self.challenge(conn)
        link = self.welcome(conn, heartbeat_ms, max_message)
        ordinal, jid, link.where = link.recv_msg()
        assert (ordinal, jid, link.where[:1]) == (0, 0, bytes([WHERE])), \
            f"expected a WHERE, got {(ordinal, jid, link.where[:1])}"
        return link

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Relay:
    """A man in the middle without the secret: it listens on loopback, and
    for the one slave that connects it connects to the master at `addr`
    and passes whole messages between them. `tamper(direction, index,
    frame)` (direction "m2s" or "s2m", index counting that direction's
    messages from 0, the handshake's included) returns the messages to
    pass on instead: the frame itself (a faithful relay), nothing, it
    twice, a changed one... `frames` records every message that came, by
    direction."""

    def __init__(self, addr: str, tamper=None, timeout: float = 30):
        self.master_addr, self.timeout = addr, timeout
        self.tamper = tamper or (lambda d, i, f: [f])
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(timeout)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.frames = {"m2s": [], "s2m": []}
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pump(self, direction, src, dst):
        try:
            while True:
                head = recv_exact(src, HEADER.size)
                frame = head + recv_exact(src, HEADER.unpack(head)[2])
                index = len(self.frames[direction])
                self.frames[direction].append(frame)
                for out in self.tamper(direction, index, frame):
                    dst.sendall(out)
        except OSError:
            pass
        finally:                      # one side gone: so is the other
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def _run(self):
        try:
            slave, _ = self.sock.accept()
        except OSError:
            return
        master = connect(self.master_addr, self.timeout)
        for s in (slave, master):
            s.settimeout(None)
        t = threading.Thread(target=self._pump, args=("m2s", master, slave),
                             daemon=True)
        t.start()
        self._pump("s2m", slave, master)
        t.join(self.timeout)
        slave.close()
        master.close()

    def close(self):
        self.sock.close()
