#!/usr/bin/env python3
# Instructions a request, counted by callgrind, for the bare tiny_http
# ceiling, cookie `GET /api/whoami` and `/auth/forward` (50 rules, the
# matching one last): the figures of the README's "The HTTP layer made
# cheaper" and "Fewer allocations a request". Unlike `cargo bench`, the count
# does not move with the machine's load, so it tells one change from the
# next; it counts user space only (the kernel's part is in the README too).
#
#     cargo build --release && cargo bench --bench http --no-run
#     python3 benches/instructions.py target/release/sessiond \
#         target/release/deps/http-<hash>
#
# Needs valgrind. It seeds 10,000 users as the bench does (the bench binary's
# `__seed-live`), adds the rules with `sessiond access add`, starts each
# server under callgrind with its counting off, warms it up with 1,000
# requests, then counts 10,000 keep-alive requests over 4 connections
# rotating over 1,000 cookies, with DJANGO_SESSION_SAVE_EVERY_REQUEST off so
# that no request writes (under callgrind a run lasts longer than the half
# minute after which a stored expiry is due to slide, and until 2026-12-02
# the later runs paid for slides the earlier did not). It prints the whole
# process's instructions a request for each.
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

REQUESTS = 10_000
WARM_UP = 1_000
CONNECTIONS = 4
COOKIES = 1_000
FORWARD = (
    "X-Forwarded-Method: GET\r\nX-Forwarded-Proto: https\r\n"
    "X-Forwarded-Host: app.example.test\r\nX-Forwarded-Uri: /page\r\n"
)


def request_bytes(kind, host, cookie):
    path = "/auth/forward" if kind == "forward" else "/api/whoami"
    extra = FORWARD if kind == "forward" else ""
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Cookie: sessionid={cookie}\r\n\r\n"
    return head.encode()


def drive(addr, kind, count, cookies):
    """`count` keep-alive GETs over CONNECTIONS connections; the statuses."""
    host, port = addr.rsplit(":", 1)
    prepared = [request_bytes(kind, addr, cookie) for cookie in cookies]
    statuses, lock = {}, threading.Lock()

    def run(first):
        with socket.create_connection((host, int(port))) as sock:
            answers = sock.makefile("rb")
            for number in range(first, count, CONNECTIONS):
                sock.sendall(prepared[number % len(prepared)])
                status = answers.readline().split()[1].decode()
                length = 0
                while (line := answers.readline()) not in (b"\r\n", b""):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                answers.read(length)
                with lock:
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=run, args=(first,)) for first in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


def wait_for_port(addr, seconds=60):
    host, port = addr.rsplit(":", 1)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on {addr}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def count(kind, sessiond, bench, folder, cookies):
    out = os.path.join(folder, f"callgrind.{kind}")
    valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    env = dict(os.environ, SESSIOND_ACCESS_LOG="false", SESSIOND_SERVE_WORKERS="2",
               DJANGO_SESSION_SAVE_EVERY_REQUEST="false",
               DJANGO_SESSION_COOKIE_AGE="7200", SESSIOND_SESSION_ABSOLUTE_AGE="2592000")
    if kind == "ceiling":
        server = subprocess.Popen(valgrind + [bench, "__ceiling", "4"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        addr = server.stdout.readline().strip()
    else:
        addr = f"127.0.0.1:{free_port()}"
        database = os.path.join(folder, "db.sqlite3")
        server = subprocess.Popen(
            valgrind + [sessiond, "--env-file", "/nonexistent", "--db", database, "serve",
                        "--bind", addr], env=env, stderr=subprocess.DEVNULL)
        wait_for_port(addr)
    wanted = "whoami" if kind == "ceiling" else kind
    drive(addr, wanted, WARM_UP, cookies)
    subprocess.run(["callgrind_control", "-i", "on", str(server.pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    statuses = drive(addr, wanted, REQUESTS, cookies)
    subprocess.run(["callgrind_control", "-i", "off", str(server.pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["callgrind_control", "-d", str(server.pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    if kind == "ceiling":
        server.stdin.close()
    else:
        server.send_signal(2)
    server.wait()
    if statuses != {"200": REQUESTS}:
        raise SystemExit(f"{kind}: not every request answered 200: {statuses}")
    totals = subprocess.run(["callgrind_annotate", out + ".1"], capture_output=True, text=True,
                            check=True).stdout
    total = int(re.search(r"([\d,]+) \([^)]*\)\s+PROGRAM TOTALS", totals).group(1).replace(",", ""))
    return total // REQUESTS


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__ or "usage: instructions.py SESSIOND BENCH_BINARY")
    sessiond, bench = (os.path.abspath(path) for path in sys.argv[1:])
    with tempfile.TemporaryDirectory() as folder:
        database = os.path.join(folder, "db.sqlite3")
        subprocess.run([bench, "__seed-live", database, folder], check=True)
        cli = [sessiond, "--env-file", "/nonexistent", "--db", database, "access", "add"]
        for number in range(1, 50):
            path = ["--path", "/admin"] if number % 2 == 0 else []
            subprocess.run(cli + [f"app{number}.example.test", "admin"] + path, check=True,
                           stdout=subprocess.DEVNULL)
        subprocess.run(cli + ["*.example.test", "user"], check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(folder, "cookies.txt")) as lines:
            cookies = [line.strip() for line in lines][:COOKIES]
        for kind in ("ceiling", "whoami", "forward"):
            print(f"{kind}: {count(kind, sessiond, bench, folder, cookies)} instructions a request",
                  flush=True)


if __name__ == "__main__":
    main()
