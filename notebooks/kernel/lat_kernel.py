"""lat_kernel.py: the Jupyter kernel for lat notebooks (cells are Lua).

A thin wrapper over ipykernel: it starts one `lat` process running lua/lat/tools/kernel.lua (the
same engine as the lat command's REPL) and relays between Jupyter and that process. Requests go to
the process's stdin as JSON lines; what cells print arrives on its stdout and stderr; replies
(values, plots, errors, the end of a cell) arrive as JSON lines on a separate pipe. The lat command
is $LAT (the kernel spec that CMake writes into build/jupyter names the built one), else the one
installed with this file (PREFIX/share/jupyter/kernels/lat/lat_kernel.py -> PREFIX/bin/lat).

    /usr/bin/python3 notebooks/kernel/lat_kernel.py -f CONNECTION_FILE   (what kernel.json runs)
"""
import base64
import codecs
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import time

from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

# after an interrupt, how long a cell may take to reach a point where Lua can stop it (a tight
# loop that LuaJIT compiled never does) before lat is restarted
INTERRUPT_GRACE = 5.0


def installed_lat():
    """PREFIX/bin/lat when this file is PREFIX/share/jupyter/kernels/lat/lat_kernel.py, else lat"""
    prefix = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", ".."))
    lat = os.path.join(prefix, "bin", "lat")
    return lat if os.access(lat, os.X_OK) else "lat"


class LatProcess:
    """One lat process serving lua/lat/tools/kernel.lua, and the three pipes from it."""

    def __init__(self):
        lat = os.environ.get("LAT") or installed_lat()
        replies_r, replies_w = os.pipe()
        env = dict(os.environ, LAT_KERNEL_FD=str(replies_w))
        try:
            self.proc = subprocess.Popen(
                [lat, "-e", "require('lat.tools.kernel').serve()"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                pass_fds=(replies_w,), env=env,
                start_new_session=True)  # interrupts reach it only through us, once
        except OSError as e:
            raise RuntimeError("lat kernel: cannot run %r (%s); $LAT must name the built lat command, as the "
                               "kernel spec that .ci/setup.sh installs does" % (lat, e)) from e
        finally:
            os.close(replies_w)
        self.replies = replies_r
        self.streams = {self.proc.stdout.fileno(): "stdout", self.proc.stderr.fileno(): "stderr"}
        self.decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in self.streams}
        for fd in list(self.streams) + [self.replies]:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.pending = b""

    def alive(self):
        return self.proc.poll() is None

    def send(self, request):
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()

    def acknowledge(self):
        """Lets the process go on after a display reply, which it waits on so that its later
        output cannot overtake the image."""
        self.proc.stdin.write(b"ok\n")
        self.proc.stdin.flush()

    def interrupt(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGINT)

    def close(self):
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        os.close(self.replies)

    def drain(self, on_output):
        """Passes whatever the process has printed so far to on_output(stream_name, text)."""
        for fd, name in self.streams.items():
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not chunk:
                    break
                text = self.decoders[fd].decode(chunk)
                if text:
                    on_output(name, text)

    def messages(self, on_output, timeout):
        """Waits up to timeout seconds; passes output on and returns the replies that arrived
        (None once the process has gone)."""
        fds = list(self.streams) + [self.replies]
        ready, _, _ = select.select(fds, [], [], timeout)
        if self.replies in ready:
            self.drain(on_output)  # the process flushed this before it wrote the reply
            try:
                chunk = os.read(self.replies, 65536)
            except BlockingIOError:
                chunk = b""
            if not chunk and not self.alive():
                self.drain(on_output)
                return None
            self.pending += chunk
        elif ready:
            self.drain(on_output)
        *lines, self.pending = self.pending.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


class LatKernel(Kernel):
    implementation = "lat"
    implementation_version = "0.1"
    banner = "lat: tensors and latent attacks in Lua"
    language_info = {
        "name": "lua",
        "mimetype": "text/x-lua",
        "file_extension": ".lua",
        "codemirror_mode": "lua",
        "pygments_lexer": "lua",
    }

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.lat = None
        self.progress_ids = set()
        self.start_lat()

    def start_lat(self):
        self.lat = LatProcess()
        self.wait_for("ready")

    def stream(self, name, text):
        self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

    def show_png(self, msg):
        path = msg["png"]
        try:
            with open(path, "rb") as f:
                data = base64.b64encode(f.read()).decode("ascii")
        except OSError as e:
            self.stream("stderr", "lat kernel: cannot show %s: %s\n" % (path, e))
            return
        finally:
            if msg.get("temp"):
                try:
                    os.remove(path)
                except OSError:
                    pass
        self.send_response(self.iopub_socket, "display_data",
                           {"data": {"image/png": data,
                                     "text/plain": "<plot>" if msg.get("temp") else "<%s>" % os.path.basename(path)},
                            "metadata": {}})

    def show_progress(self, msg):
        """A progress bar is a display that each new line of it replaces."""
        display_id = "%s-%d" % (msg["id"], self.lat.proc.pid)  # lat numbers its bars afresh after a restart
        content = {"data": {"text/plain": msg["text"]}, "metadata": {}, "transient": {"display_id": display_id}}
        kind = "update_display_data" if display_id in self.progress_ids else "display_data"
        self.progress_ids.add(display_id)
        self.send_response(self.iopub_socket, kind, content)

    def wait_for(self, until, on_reply=None, interruptible=False):
        """Relays output and replies until a reply of type `until`; returns False if lat died."""
        interrupted_at = None
        while True:
            try:
                timeout = 0.5 if interrupted_at is None else 0.1
                msgs = self.lat.messages(self.stream, timeout)
            except KeyboardInterrupt:
                if not interruptible:
                    continue
                interrupted_at = interrupted_at or time.monotonic()
                self.lat.interrupt()
                continue
            if msgs is None:
                return False
            for msg in msgs:
                if msg["type"] == until:
                    return True
                if msg["type"] == "display":
                    self.show_png(msg)
                    self.lat.acknowledge()
                elif msg["type"] == "progress":
                    self.show_progress(msg)
                    self.lat.acknowledge()
                elif on_reply:
                    on_reply(msg)
            if interrupted_at is not None:
                if time.monotonic() - interrupted_at > INTERRUPT_GRACE:  # inf once killed: never again
                    self.stream("stderr", "lat kernel: the cell did not stop (a loop that LuaJIT compiled "
                                          "checks for interrupts only when it calls out); restarting lat\n")
                    self.lat.proc.kill()  # the replies pipe closes: messages() returns None
                    interrupted_at = float("inf")

    def restart_lat(self, why):
        self.lat.drain(self.stream)
        code = self.lat.proc.poll()
        self.lat.close()
        self.start_lat()
        return {"status": "error", "ename": "LatRestarted",
                "evalue": "%s (exit status %s); lat was restarted: variables from earlier cells are gone" % (why, code),
                "traceback": []}

    def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False):
        if not code.strip():
            return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}
        outcome = {"status": "ok"}

        def on_reply(msg):
            if msg["type"] == "result" and not silent:
                self.send_response(self.iopub_socket, "execute_result",
                                   {"execution_count": self.execution_count,
                                    "data": {"text/plain": msg["text"]}, "metadata": {}})
            elif msg["type"] == "error":
                outcome.update(status="error", ename=msg["ename"], evalue=msg["evalue"],
                               traceback=msg["traceback"])
                self.send_response(self.iopub_socket, "error",
                                   {"ename": msg["ename"], "evalue": msg["evalue"], "traceback": msg["traceback"]})

        def failed(why):
            result = self.restart_lat(why)
            self.send_response(self.iopub_socket, "error", {k: result[k] for k in ("ename", "evalue", "traceback")})
            return result

        if not self.lat.alive():
            outcome = failed("lat had stopped before the cell")
        else:
            try:
                self.lat.send({"op": "execute", "code": code, "n": self.execution_count})
                finished = self.wait_for("done", on_reply, interruptible=True)
            except OSError:  # a broken pipe: lat has gone
                finished = False
            if not finished:
                outcome = failed("lat stopped during the cell")
        outcome.update(execution_count=self.execution_count, payload=[], user_expressions={})
        return outcome

    def ask(self, request, reply_type):
        """Sends a request that is not a cell; returns its reply message or None."""
        if not self.lat.alive():
            return None
        answer = {}
        try:
            self.lat.send(request)
            self.wait_for("done", lambda msg: answer.update(msg) if msg["type"] == reply_type else None)
        except OSError:
            return None
        return answer or None

    def do_complete(self, code, cursor_pos):
        word = re.search(r"[\w.:]*$", code[:cursor_pos]).group(0)
        reply = self.ask({"op": "complete", "word": word}, "matches")
        matches = (reply or {}).get("matches") or []
        return {"status": "ok", "matches": matches, "cursor_start": cursor_pos - len(word),
                "cursor_end": cursor_pos, "metadata": {}}

    def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        before = re.search(r"[\w.:]*$", code[:cursor_pos]).group(0)
        after = re.match(r"[\w]*", code[cursor_pos:]).group(0)
        word = (before + after).rstrip(".:")
        reply = self.ask({"op": "inspect", "word": word}, "doc")
        text = (reply or {}).get("text")
        return {"status": "ok", "found": bool(text), "data": {"text/plain": text} if text else {}, "metadata": {}}

    def do_shutdown(self, restart):
        self.lat.close()
        return {"status": "ok", "restart": restart}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=LatKernel)
