#!/usr/bin/env python3
"""Hold N echo connections open against one server, from several client
processes (each process is capped at RLIMIT_NOFILE too), then check that every
connection still echoes. Prints one line: held=... echoed=... failed=...

usage: fdlimit.py PORT TOTAL [PROCS]   (loopback only; bounded in time)"""
import os, selectors, socket, sys, time

def client(port, n, out, src):
    socks, failed = [], 0
    for i in range(n):
        s = socket.socket()
        s.bind((src, 0))  # one source address per process: ~28k ephemeral ports each
        s.setblocking(False)
        try:
            s.connect_ex(("127.0.0.1", port))
        except OSError:
            failed += 1
            s.close()
            continue
        socks.append(s)
        if i % 500 == 499:
            time.sleep(0.05)  # stay under the listen backlog
    # Wait for every connect to finish: SYNs dropped by a full backlog are
    # retried by the kernel after 1 s, 3 s, ...
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_WRITE)
    waiting, deadline = len(socks), time.time() + 30
    while waiting and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            sel.unregister(key.fileobj)
            waiting -= 1
    for key in list(sel.get_map().values()):
        sel.unregister(key.fileobj)
    pending = 0
    for s in socks:
        try:
            s.send(b"ping")
            sel.register(s, selectors.EVENT_READ)
            pending += 1
        except OSError:
            failed += 1
    echoed, deadline = 0, time.time() + 30
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            try:
                ok = key.fileobj.recv(16) == b"ping"
            except OSError:
                ok = False
            echoed += ok
            failed += not ok
            pending -= 1
            sel.unregister(key.fileobj)
    failed += pending
    os.write(out, f"{len(socks)} {echoed} {failed}\n".encode())
    time.sleep(0.5)
    for s in socks:
        s.close()

def main():
    port, total = int(sys.argv[1]), int(sys.argv[2])
    procs = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    r, w = os.pipe()
    pids = []
    for i in range(procs):
        pid = os.fork()
        if pid == 0:
            os.close(r)
            client(port, total // procs, w, f"127.0.0.{2 + i}")
            os._exit(0)
        pids.append(pid)
    os.close(w)
    held = echoed = failed = 0
    with os.fdopen(r) as f:
        for line in f:
            h, e, x = map(int, line.split())
            held, echoed, failed = held + h, echoed + e, failed + x
    for pid in pids:
        os.waitpid(pid, 0)
    print(f"held={held} echoed={echoed} failed={failed}")

main()
