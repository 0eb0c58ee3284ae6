"""What a caller can do with a connection after the daemon identified it, for
test/integration/server/reverify.test.ts: exec another program on it, change its
uid first, or pass it to another account's process over SCM_RIGHTS. Python's
standard library only (socket.send_fds is 3.9+), so any account can run it with
any copy of the interpreter. argv[1] is a JSON job; the answer is one JSON
document on stdout.
"""
import json
import os
import re
import socket
import sys


def request(conn, path):
    """One GET on a kept-alive connection; the status and body (status 0: closed)."""
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: sealcache\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return {"status": 0, "body": buf.decode("latin1")}
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"content-length: *(\d+)", head, re.I)
    n = int(m.group(1)) if m else 0
    while len(rest) < n:
        chunk = conn.recv(65536)
        if not chunk:
            break
        rest += chunk
    return {"status": int(head[9:12]), "body": rest[:n].decode("utf-8", "replace")}


def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    return s


def become(who):
    """Root only: the account's uid and gid, with exactly the given groups."""
    os.setgroups(who["groups"])
    os.setresgid(who["gid"], who["gid"], who["gid"])
    os.setresuid(who["uid"], who["uid"], who["uid"])


def op_exec(job):
    """Connects, asks `before`; optionally changes uid and asks `between`; then execs
    `exec` (another interpreter) with the connection kept open, which asks `after`."""
    conn = connect(job["socket"])
    done = {"pid": os.getpid(), "exe": os.readlink("/proc/self/exe"), "before": [request(conn, p) for p in job.get("before", [])]}
    if "become" in job:
        become(job["become"])
        done["between"] = [request(conn, p) for p in job.get("between", [])]
    fd = conn.detach()
    os.set_inheritable(fd, True)
    nxt = {"op": "after-exec", "fd": fd, "after": job.get("after", []), "done": done}
    sys.stdout.flush()
    os.execv(job["exec"], [job["exec"], os.path.abspath(__file__), json.dumps(nxt)])


def op_after_exec(job):
    conn = socket.socket(fileno=job["fd"])
    out = dict(job["done"])
    out["pid_after"] = os.getpid()
    out["exe_after"] = os.readlink("/proc/self/exe")
    out["after"] = [request(conn, p) for p in job["after"]]
    return out


def op_pass(job):
    """Run as root. An opener (one account) connects and passes the connection to a
    receiver (another account) over SCM_RIGHTS, keeping no copy. The receiver asks
    `while_alive` on it, and `own` on a connection of its own; then the opener exits
    and is reaped, and the receiver asks `after_exit` on the passed connection."""
    pass_a, pass_b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    opener_go_r, opener_go_w = os.pipe()
    recv_go_r, recv_go_w = os.pipe()
    out_r, out_w = os.pipe()
    opener = os.fork()
    if opener == 0:
        become(job["opener"])
        conn = connect(job["socket"])
        socket.send_fds(pass_a, [b"c"], [conn.fileno()])
        conn.close()
        os.read(opener_go_r, 1)
        os._exit(0)
    receiver = os.fork()
    if receiver == 0:
        become(job["receiver"])
        _, fds, _, _ = socket.recv_fds(pass_b, 16, 1)
        conn = socket.socket(fileno=fds[0])
        res = {"receiver_pid": os.getpid(), "while_alive": [request(conn, p) for p in job["while_alive"]]}
        own = connect(job["socket"])
        res["own"] = [request(own, p) for p in job["own"]]
        own.close()
        os.write(out_w, b"u")
        os.read(recv_go_r, 1)
        res["after_exit"] = [request(conn, p) for p in job["after_exit"]]
        os.write(out_w, json.dumps(res).encode())
        os._exit(0)
    assert os.read(out_r, 1) == b"u"
    os.write(opener_go_w, b"x")
    os.waitpid(opener, 0)  # exited and reaped
    os.write(recv_go_w, b"x")
    os.close(out_w)
    data = b""
    while True:
        chunk = os.read(out_r, 65536)
        if not chunk:
            break
        data += chunk
    os.waitpid(receiver, 0)
    res = json.loads(data)
    res["opener_pid"] = opener
    return res


OPS = {"exec": op_exec, "after-exec": op_after_exec, "pass": op_pass}

if __name__ == "__main__":
    job = json.loads(sys.argv[1])
    out = OPS[job["op"]](job)
    if out is not None:
        sys.stdout.write(json.dumps(out))
