#!/usr/bin/env python3
"""The peer beside tests/hostile.rs: Prometheus behind mutual TLS (--web.config.file with
RequireAndVerifyClientCert), serving a good client one request every 100 ms over a keep-alive
connection opened first, while 10,000 half-open TCP connections from 200 loopback addresses
are held open and garbage is sent before TLS, as the nines test does to its ingest port.

Prints one line like the nines test's:
  peer prometheus: N requests, latency median ..ms, p99 ..ms, slowest ..ms, failed F

Usage: peer.py PKI_DIR   (a directory made by `nines-aggregator ca init` with
`ca issue --host good-1`: the same kind of certificates nines uses)
"""

import http.client
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HALF_OPEN = 10_000
ADDRESSES = 200
SECONDS = 12


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    pki = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="nines-peer-")
    port = free_port()
    with open(os.path.join(work, "web.yml"), "w") as f:
        f.write(
            "tls_server_config:\n"
            f"  cert_file: {pki}/server.pem\n"
            f"  key_file: {pki}/server.key\n"
            "  client_auth_type: RequireAndVerifyClientCert\n"
            f"  client_ca_file: {pki}/ca.pem\n"
        )
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1m\n")
    log = open(os.path.join(work, "prometheus.log"), "w")
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work}/prometheus.yml",
            f"--storage.tsdb.path={work}/data",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.config.file={work}/web.yml",
            # nines' [ingest] max_connections default; Prometheus' own default is 512.
            "--web.max-connections=16384",
        ],
        stdout=log,
        stderr=log,
    )
    try:
        ctx = ssl.create_default_context(cafile=f"{pki}/ca.pem")
        ctx.load_cert_chain(f"{pki}/agents/good-1.pem", f"{pki}/agents/good-1.key")
        good = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                good = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
                good.request("GET", "/-/ready")
                r = good.getresponse()
                r.read()
                if r.status == 200:
                    break
            except OSError:
                pass
            good = None
            time.sleep(0.2)
        if good is None:
            sys.exit("prometheus did not become ready")

        # Hostile input, as in tests/hostile.rs.
        held, refused = [], 0
        opening = time.monotonic()
        for i in range(HALF_OPEN):
            s = socket.socket()
            try:
                s.bind((f"127.1.0.{i % ADDRESSES + 1}", 0))
                s.settimeout(1)
                s.connect(("127.0.0.1", port))
                held.append(s)
            except OSError:
                s.close()
                refused += 1
                if refused >= 50:
                    break
        print(
            f"{len(held)} half-open connections in {time.monotonic() - opening:.1f}s",
            file=sys.stderr,
        )
        g = socket.create_connection(("127.0.0.1", port), timeout=5)
        g.sendall(b"GET / HTTP/1.1\r\nHost: nines\r\n\r\n")

        latencies, failed = [], 0
        start = time.monotonic()
        while time.monotonic() - start < SECONDS:
            t = time.monotonic()
            try:
                good.request("GET", "/api/v1/query?query=up")
                r = good.getresponse()
                r.read()
                if r.status != 200:
                    failed += 1
                else:
                    latencies.append(time.monotonic() - t)
            except OSError:
                failed += 1
                good = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=5)
            time.sleep(0.1)
        for s in held:
            s.close()
        g.close()
        latencies.sort()
        ms = lambda v: f"{v * 1000:.2f}ms"
        if latencies:
            print(
                f"peer prometheus: {len(latencies)} requests, latency median "
                f"{ms(statistics.median(latencies))}, p99 "
                f"{ms(latencies[len(latencies) * 99 // 100])}, slowest {ms(latencies[-1])}, "
                f"failed {failed}, half-open held {len(held)}"
            )
        else:
            print(f"peer prometheus: no request answered, failed {failed}")
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
