"""A loopback OTLP/HTTP receiver for bench/run.py --otel and --otel-pair: it stands for a
collector on another host, so it does as little as it can. It reads each export request's
body and throws it away (no decoding), answers 200 with an empty body on the same
keep-alive connection, and counts requests and bytes. `GET /stats` answers the counts as
JSON. One thread, non-blocking sockets: run as a process of its own, so that the harness
can read its CPU time beside the server's.

Usage: python3 otlp_sink.py PORT_FILE   (writes the port it listens on into PORT_FILE)
"""

import json
import selectors
import socket
import sys

OK = (b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\n"
      b"Content-Length: 0\r\n\r\n")


class Conn:
    def __init__(self):
        self.head = b""
        self.left = 0  # body bytes still to discard


def main() -> int:
    counts = {"requests": 0, "bytes": 0}
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(64)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    with open(sys.argv[1], "w") as f:
        f.write(str(lsock.getsockname()[1]))
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                conn, _ = lsock.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, Conn())
                continue
            sock, state = key.fileobj, key.data
            try:
                n = sock.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                n = 0
            if n == 0:
                sel.unregister(sock)
                sock.close()
                continue
            data = view[:n]
            while len(data):
                if state.left:
                    take = min(state.left, len(data))
                    state.left -= take
                    data = data[take:]
                    if state.left == 0:
                        sock.sendall(OK)
                    continue
                state.head += bytes(data)
                data = data[:0]
                end = state.head.find(b"\r\n\r\n")
                if end < 0:
                    continue
                head, rest = state.head[:end], state.head[end + 4:]
                state.head = b""
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if head.startswith(b"GET /stats"):
                    body = json.dumps(counts).encode()
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                else:
                    counts["requests"] += 1
                    counts["bytes"] += length
                    state.left = length
                    if length == 0:
                        sock.sendall(OK)
                data = memoryview(rest)


if __name__ == "__main__":
    sys.exit(main())
