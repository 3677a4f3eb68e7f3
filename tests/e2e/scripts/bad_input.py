"""Hostile and malformed WireGuard traffic for tests/bad_input.rs.

Run as `python3 -u bad_input.py MODE ARGS...` (or with `-c`, the text of this file). Every mode
is bounded in time and count and prints `key=value` lines the test parses:

  junk   EDGE_HOST EDGE_PORT EDGE_PUBLIC_B64
         Thousands of malformed datagrams at the edge from one socket, then listens 1 s.
         Prints sent=, bytes=, mac1_valid=, replies=.
  relay  LISTEN_HOST LISTEN_PORT EDGE_HOST EDGE_PORT RECORD_PATH
         A UDP relay between one client and the edge; every datagram is appended to
         RECORD_PATH as `c2e <hex>` or `e2c <hex>`. Runs until killed.
  replay RECORD_PATH BIND_HOST EDGE_HOST EDGE_PORT
         Re-sends the recorded client-to-edge initiations and data datagrams verbatim, then
         truncated and altered copies, from a new socket; listens 1 s.
         Prints inits=, datas=, data_bytes=, altered=, replies=, reply_types=.
  flood  EDGE_HOST EDGE_PORT EDGE_PUBLIC_B64 ADDRS_FILE RATE MAX_SECS STOP_PATH
         One socket per source address in ADDRS_FILE; initiations with a valid mac1 and
         garbage otherwise at RATE per second in total until STOP_PATH exists or MAX_SECS
         pass, counting cookie replies (type 3, 64 bytes, receiver index one this socket
         used). Prints `first-cookie` once, then sent=, cookies=, cookie_sources=, bad=.
"""

import base64
import hashlib
import os
import random
import selectors
import socket
import struct
import sys
import time

INIT_LEN = 148
RESPONSE_LEN = 92
COOKIE_LEN = 64
DATA_MIN = 32
LISTEN_AFTER = 1.0


def mac1_key(edge_public_b64):
    public = base64.b64decode(edge_public_b64)
    return hashlib.blake2s(b"mac1----" + public).digest()


def with_mac1(key, body):
    """`body` (the message up to mac1) followed by its mac1 and a zero mac2."""
    mac1 = hashlib.blake2s(body, key=key, digest_size=16).digest()
    return body + mac1 + bytes(16)


def header(kind, index):
    return struct.pack("<BxxxI", kind, index)


def garbage_initiation(key, sender):
    return with_mac1(key, header(1, sender) + os.urandom(32 + 48 + 28))


def garbage_response(key, sender, receiver):
    return with_mac1(key, header(2, sender) + struct.pack("<I", receiver) + os.urandom(32 + 16))


def listen(sock, seconds):
    """Datagrams received on `sock` within `seconds`."""
    received = []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return received
        sock.settimeout(left)
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            return received
        received.append(data)


def junk_datagrams(key, rng):
    """Yields (datagram, has_valid_mac1). Valid-mac1 messages stay well below the edge's
    default load limit (100 handshake messages per second), so none may be answered."""
    rand = os.urandom
    # Random bytes of every length from 0 to 1500.
    for length in range(0, 1501):
        yield rand(length), False
    # Each message type with every wrong length up to 300 (type 4: below its minimum).
    for kind, good in ((1, INIT_LEN), (2, RESPONSE_LEN), (3, COOKIE_LEN)):
        for length in range(1, 301):
            if length != good:
                yield (bytes([kind, 0, 0, 0]) + rand(300))[:length], False
    for length in range(1, DATA_MIN):
        yield (bytes([4, 0, 0, 0]) + rand(DATA_MIN))[:length], False
    # Right lengths, non-zero reserved bytes, and unknown types.
    for kind, good in ((1, INIT_LEN), (2, RESPONSE_LEN), (3, COOKIE_LEN), (4, 64)):
        for reserved in (b"\x01\x00\x00", b"\x00\x00\x01", b"\xff\xff\xff"):
            yield bytes([kind]) + reserved + rand(good - 4), False
    for kind in (0, 5, 6, 0x7F, 0x80, 0xFF):
        for length in (4, 32, 64, 92, 148):
            yield bytes([kind, 0, 0, 0]) + rand(length - 4), False
    # Right type and length, random content (bad mac1, unknown indices, bad tags).
    for _ in range(100):
        yield header(1, rng.getrandbits(32)) + rand(INIT_LEN - 8), False
        yield header(2, rng.getrandbits(32)) + rand(RESPONSE_LEN - 8), False
        yield header(3, rng.getrandbits(32)) + rand(COOKIE_LEN - 8), False
    # Cookie replies and data aimed at the receiver indices of the edge's one real peer
    # (peer index 1, boringtun's local indices are `index << 8 | n`).
    for low in range(256):
        yield header(3, 0x100 | low) + rand(COOKIE_LEN - 8), False
        yield header(4, 0x100 | low) + struct.pack("<Q", rng.getrandbits(64)) + rand(
            rng.randrange(16, 1400)
        ), False
        yield header(4, 0x100 | low) + struct.pack("<Q", low) + rand(16), False
    # Truncated and over-long initiations that carried a valid mac1 before cutting.
    init = garbage_initiation(key, rng.getrandbits(32))
    for length in range(0, INIT_LEN):
        yield init[:length], False
    for extra in range(1, 53):
        yield init + rand(extra), False
    # Data packets with random receiver indices, counters and lengths.
    for _ in range(600):
        yield header(4, rng.getrandbits(32)) + struct.pack("<Q", rng.getrandbits(64)) + rand(
            rng.randrange(16, 1470)
        ), False
    # Valid mac1, garbage otherwise: 40 initiations and 20 responses (60 < 100 per second).
    for _ in range(40):
        yield garbage_initiation(key, rng.getrandbits(32)), True
    for n in range(20):
        receiver = 0x100 | n if n % 2 else rng.getrandbits(32)
        yield garbage_response(key, rng.getrandbits(32), receiver), True


def junk(edge_host, edge_port, edge_public):
    key = mac1_key(edge_public)
    rng = random.Random()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((edge_host, int(edge_port)))
    sent = total = mac1_valid = 0
    for datagram, valid in junk_datagrams(key, rng):
        sock.send(datagram)
        sent += 1
        total += len(datagram)
        mac1_valid += valid
        if sent % 64 == 0:
            # Pace a little so the edge's socket buffer holds it all (the point is that the
            # edge reads the junk, not that the kernel drops it).
            time.sleep(0.002)
    replies = listen(sock, LISTEN_AFTER)
    print(f"sent={sent}")
    print(f"bytes={total}")
    print(f"mac1_valid={mac1_valid}")
    print(f"replies={len(replies)}")
    print("reply_types=" + ",".join(str(r[0]) if r else "empty" for r in replies))


def relay(listen_host, listen_port, edge_host, edge_port, record_path):
    edge = (edge_host, int(edge_port))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((listen_host, int(listen_port)))
    client = None
    with open(record_path, "a", encoding="ascii") as record:
        print("ready", flush=True)
        while True:
            data, source = sock.recvfrom(65535)
            if source == edge:
                if client is not None:
                    sock.sendto(data, client)
                record.write("e2c " + data.hex() + "\n")
            else:
                client = source
                sock.sendto(data, edge)
                record.write("c2e " + data.hex() + "\n")
            record.flush()


def replay(record_path, bind_host, edge_host, edge_port):
    inits, datas = [], []
    with open(record_path, encoding="ascii") as record:
        for line in record:
            direction, _, text = line.strip().partition(" ")
            if direction != "c2e" or not text:
                continue
            data = bytes.fromhex(text)
            if data[:4] == b"\x01\x00\x00\x00" and len(data) == INIT_LEN:
                inits.append(data)
            elif data[:4] == b"\x04\x00\x00\x00" and len(data) >= DATA_MIN:
                datas.append(data)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind_host, 0))
    sock.connect((edge_host, int(edge_port)))
    # Verbatim replays first: the initiations (old TAI64N timestamps) and every data datagram
    # (counters the edge has seen).
    for data in inits + datas:
        sock.send(data)
    # Then altered copies: truncated, extended and with one bit flipped.
    altered = []
    for data in inits:
        altered += [data[:-1], data[:116], data[:8], data + b"\x00", data[:-17] + bytes(17)]
    for data in datas:
        flipped = bytearray(data)
        flipped[-1] ^= 1
        altered += [data[:-1], data[:DATA_MIN - 1], data[:16], bytes(flipped)]
        if len(data) > DATA_MIN:
            altered.append(data[:DATA_MIN])
    for data in altered:
        sock.send(data)
    replies = listen(sock, LISTEN_AFTER)
    print(f"inits={len(inits)}")
    print(f"datas={len(datas)}")
    print(f"data_bytes={sum(len(d) for d in datas)}")
    print(f"altered={len(altered)}")
    print(f"replies={len(replies)}")
    print("reply_types=" + ",".join(str(r[0]) if r else "empty" for r in replies))


def flood(edge_host, edge_port, edge_public, addrs_file, rate, max_secs, stop_path):
    key = mac1_key(edge_public)
    edge = (edge_host, int(edge_port))
    rate, max_secs = float(rate), float(max_secs)
    with open(addrs_file, encoding="ascii") as f:
        addrs = [line.strip() for line in f if line.strip()]
    selector = selectors.DefaultSelector()
    socks, used = [], []
    for n, addr in enumerate(addrs):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((addr, 0))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, n)
        socks.append(sock)
        used.append(set())
    rng = random.Random()
    sent = cookies = bad = 0
    cookie_sources = set()
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    start = time.monotonic()
    deadline = start + max_secs
    next_tick = start
    turn = 0

    def drain(timeout):
        nonlocal cookies, bad
        for selected, _ in selector.select(timeout):
            n = selected.data
            while True:
                try:
                    data, source = socks[n].recvfrom(65535)
                except BlockingIOError:
                    break
                receiver = struct.unpack_from("<I", data, 4)[0] if len(data) >= 8 else None
                if (
                    source == edge
                    and len(data) == COOKIE_LEN
                    and data[:4] == b"\x03\x00\x00\x00"
                    and receiver in used[n]
                ):
                    if cookies == 0:
                        print("first-cookie", flush=True)
                    cookies += 1
                    cookie_sources.add(n)
                else:
                    bad += 1

    print(f"ready sources={len(socks)}", flush=True)
    while time.monotonic() < deadline and not os.path.exists(stop_path):
        for _ in range(per_tick):
            n = turn % len(socks)
            turn += 1
            sender = rng.getrandbits(32)
            used[n].add(sender)
            try:
                socks[n].sendto(garbage_initiation(key, sender), edge)
                sent += 1
            except BlockingIOError:
                pass
        next_tick += tick
        # Never burst to catch up after a stall: the rate is a ceiling.
        next_tick = max(next_tick, time.monotonic() - tick)
        while True:
            left = next_tick - time.monotonic()
            drain(max(0.0, left))
            if left <= 0:
                break
    # Replies still in flight.
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        drain(end - time.monotonic())
    print(f"elapsed={time.monotonic() - start:.2f}")
    print(f"sent={sent}")
    print(f"cookies={cookies}")
    print(f"cookie_sources={len(cookie_sources)}")
    print(f"bad={bad}", flush=True)


MODES = {"junk": junk, "relay": relay, "replay": replay, "flood": flood}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit("usage: bad_input.py junk|relay|replay|flood ARGS...")
    MODES[sys.argv[1]](*sys.argv[2:])
