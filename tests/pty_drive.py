"""pty_drive.py: runs a command in a pseudo-terminal, types the given lines into it one by one,
each once the REPL has shown its prompt (not after a fixed wait: on a busy machine, or under the
sanitizers, start-up takes seconds, and what is typed before line editing is set up is
discarded), and prints everything the terminal showed.
usage: pty_drive.py LINES_FILE COMMAND [ARGS...]"""
import os
import pty
import select
import sys
import time


PROMPT = b"> "


def read_until_quiet(fd, quiet=0.3, limit=120.0, until=PROMPT):
    """Reads until the output holds `until` and then has been quiet for `quiet` seconds (or the
    process ended, or `limit` passed)."""
    out, start, last = b"", time.time(), time.time()
    while time.time() - start < limit:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            last = time.time()
        elif time.time() - last > quiet and until in out:
            break
    return out


def main():
    lines = open(sys.argv[1]).read().split("\n")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[2], sys.argv[2:])
    out = read_until_quiet(fd)
    for line in lines:
        if line == "":
            continue
        os.write(fd, line.encode() + b"\r")
        out += read_until_quiet(fd)
    os.write(fd, b"\x04")  # Ctrl-D ends the REPL
    out += read_until_quiet(fd, limit=30, until=b"\0")  # to the end of its output
    for _ in range(300):  # 30 s for it to exit, then it is killed (exit -9) rather than waited on
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode("utf-8", "replace"))
    sys.stdout.write("\n[exit %d]\n" % os.waitstatus_to_exitcode(status))


main()
