#!/usr/bin/env python3
# The cost of `synchronous=FULL` for the writes that end access (issue 14,
# SPEC 8): 2,000 single-row deletes by key, each in its own IMMEDIATE
# transaction on a WAL database, committed with NORMAL and with FULL, as
# `db::ending_access` does (the pragma set before BEGIN, put back after).
# Python's sqlite3 drives the same SQLite commit path; run it on the file
# system that holds the database:
#
#     python3 benches/full_sync_cost.py /var/lib/sessiond
#
# It prints microseconds per ending write for each setting, twice each.
import os
import sqlite3
import sys
import tempfile
import time


def run(folder, level, n=2000):
    d = tempfile.mkdtemp(dir=folder)
    c = sqlite3.connect(os.path.join(d, "bench.sqlite3"), isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA synchronous=NORMAL")
    c.execute("CREATE TABLE s (id INTEGER PRIMARY KEY, k BLOB UNIQUE, v TEXT)")
    c.executemany("INSERT INTO s (k, v) VALUES (?, 'x')", [(os.urandom(32),) for _ in range(n)])
    keys = [row[0] for row in c.execute("SELECT k FROM s")]
    start = time.perf_counter()
    for key in keys:
        c.execute("PRAGMA synchronous=" + level)
        c.execute("BEGIN IMMEDIATE")
        c.execute("DELETE FROM s WHERE k = ?", (key,))
        c.execute("COMMIT")
        c.execute("PRAGMA synchronous=NORMAL")
    elapsed = (time.perf_counter() - start) / n * 1e6
    c.close()
    for name in os.listdir(d):
        os.remove(os.path.join(d, name))
    os.rmdir(d)
    return elapsed


for folder in sys.argv[1:] or ["."]:
    for level in ["NORMAL", "FULL", "NORMAL", "FULL"]:
        print(f"{folder}: {level:6} {run(folder, level):8.1f} us per ending write")
