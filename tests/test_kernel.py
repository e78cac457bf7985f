"""test_kernel.py: lat's Jupyter kernel (notebooks/kernel/lat_kernel.py) spoken to as Jupyter
does, through jupyter_client: values, state across cells, printed output, errors, interrupts,
inline images, completion and inspection. Run by CTest with JUPYTER_PATH naming the build's
kernel spec; exits non-zero when a check fails."""
import base64
import os
import sys
import time
import traceback

import jupyter_client

failures = 0


def check(name, fn):
    global failures
    try:
        fn()
        print("ok   " + name)
    except Exception:
        failures += 1
        print("FAIL " + name + "\n" + traceback.format_exc())


km, kc = jupyter_client.manager.start_new_kernel(kernel_name="lat", startup_timeout=60)


def shell_reply(msg_id, timeout):
    """The shell reply to request msg_id. Replies to other requests (start_new_kernel's own
    kernel_info_request, whose reply may still be queued on a busy machine) are passed over."""
    deadline = time.monotonic() + timeout
    while True:
        msg = kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id:
            return msg


STARTED = "print('cell started'); io.stdout:flush()\n"


def run(code, timeout=60, interrupt=False):
    """Runs a cell; returns (reply content, [(msg_type, content), ...] of its outputs). With
    interrupt, the cell is prefixed with a line that prints a marker, and the kernel is
    interrupted once the marker has arrived, so that the interrupt falls inside the cell however
    slowly the machine starts it."""
    msg_id = kc.execute(STARTED + code if interrupt else code)
    outputs = []
    while True:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "status" and msg["content"]["execution_state"] == "idle":
            break
        if interrupt and kind == "stream" and "cell started" in msg["content"]["text"]:
            interrupt = False
            time.sleep(0.3)  # into the loop that follows the marker
            km.interrupt_kernel()
            continue
        if kind in ("stream", "execute_result", "error", "display_data", "update_display_data"):
            outputs.append((kind, msg["content"]))
    return shell_reply(msg_id, timeout)["content"], outputs


def result(outputs):
    values = [c["data"]["text/plain"] for k, c in outputs if k == "execute_result"]
    assert len(values) == 1, outputs
    return values[0]


def text(outputs, name):
    return "".join(c["text"] for k, c in outputs if k == "stream" and c["name"] == name)


def test_values_and_state():
    reply, out = run("x = 2\nx * 3")
    assert reply["status"] == "ok" and result(out) == "6", out
    reply, out = run("y = lat.tensor{{1, 2}, {3, 4}}\nx + 1")
    assert result(out) == "3", out
    reply, out = run("y * x")
    assert "tensor({{2., 4.}," in result(out) and "shape={2, 2}" in result(out), out
    reply, out = run("z = 5")  # a statement shows nothing
    assert reply["status"] == "ok" and not [k for k, _ in out if k == "execute_result"], out


def test_reading_input_does_not_eat_requests():
    reply, out = run("io.read('*l') == nil")
    assert result(out) == "true", out


def test_printed_output_in_order():
    reply, out = run("print('one')\nio.stderr:write('two\\n')\nprint('three')\n42")
    assert text(out, "stdout") == "one\nthree\n" and text(out, "stderr") == "two\n", out
    assert out[-1][0] == "execute_result" and out[-1][1]["data"]["text/plain"] == "42", out


def test_error_then_session_goes_on():
    reply, out = run("w = 7\nerror('oops')")
    assert reply["status"] == "error" and "oops" in reply["evalue"], reply
    errors = [c for k, c in out if k == "error"]
    assert len(errors) == 1 and errors[0]["evalue"] == "cell[%d]:2: oops" % reply["execution_count"], errors
    reply, out = run("nosuch.field")
    assert reply["status"] == "error" and "attempt to index global 'nosuch'" in reply["evalue"], reply
    reply, out = run("w + x")
    assert result(out) == "9", out


def test_locals_persist_across_cells():
    reply, out = run("local k = 40\nlocal function plus2(v) return v + 2 end")
    assert reply["status"] == "ok", reply
    reply, out = run("plus2(k)")
    assert result(out) == "42", out
    reply, out = run("rawget(_G, 'k') == nil and rawget(_G, 'plus2') == nil")
    assert result(out) == "true", out


def test_library_error_shows_the_cells_frames_only():
    reply, out = run("local m = lat.models.MLP{sizes = {2, 3, 1}}\nlocal y = m(lat.zeros(4, 5))\nreturn y")
    assert reply["status"] == "error" and "in layer 'fc1' (Linear)" in reply["evalue"], reply
    assert reply["evalue"].startswith("cell[%d]:2:" % reply["execution_count"]), reply
    frames = "\n".join(reply["traceback"])
    assert "/lua/lat/" not in frames and "[C]" not in frames, frames


def test_interrupt_keeps_the_session():
    reply, out = run("kept = 11\nwhile true do local t = lat.ones(8) * 2 end", interrupt=True)
    assert reply["status"] == "error" and reply["ename"] == "Interrupted", reply
    reply, out = run("kept")
    assert result(out) == "11", out


def test_interrupt_between_cells_is_harmless():
    km.interrupt_kernel()
    time.sleep(0.5)
    reply, out = run("kept + 1")
    assert reply["status"] == "ok" and result(out) == "12", (reply, out)


def test_progress_bar_redraws_in_place():
    reply, out = run("local bar = lat.log.progress{label = 'steps', total = 3}\n"
                     "for i = 1, 3 do bar:update(i) end\nbar:finish()")
    shown = [(k, c["transient"]["display_id"], c["data"]["text/plain"]) for k, c in out if "display_data" in k]
    assert reply["status"] == "ok" and len(shown) == 2, out
    (first, id1, text1), (second, id2, text2) = shown
    assert first == "display_data" and second == "update_display_data" and id1 == id2, shown
    assert text1.startswith("steps") and "1/3" in text1 and "3/3" in text2 and " in 0:00" in text2, shown
    assert text(out, "stderr") == "", out  # not on stderr as well


def test_images_inline():
    reply, out = run("lat.plot.images{images = lat.rand(4, 1, 8, 8)}")
    shown = [c for k, c in out if k == "display_data"]
    assert reply["status"] == "ok" and len(shown) == 1, out
    png = base64.b64decode(shown[0]["data"]["image/png"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:16]
    assert not [k for k, _ in out if k == "execute_result"], out  # nothing else is shown


def test_output_keeps_its_order_around_images():
    reply, out = run("print('before')\nlat.plot.images{images = lat.rand(1, 1, 4, 4)}\nprint('after')")
    kinds = [(k, c.get("text")) for k, c in out]
    assert kinds == [("stream", "before\n"), ("display_data", None), ("stream", "after\n")], kinds


def test_line_plot_inline():
    reply, out = run("ok = lat.plot.available()\nok")
    if result(out) != "true":
        print("     (gnuplot not installed: line plot not checked)")
        return
    reply, out = run("lat.plot.line{series = {{name = 'a', y = {1, 3, 2}}}}")
    shown = [c for k, c in out if k == "display_data"]
    assert len(shown) == 1 and base64.b64decode(shown[0]["data"]["image/png"])[:4] == b"\x89PNG", out


def test_completion_and_inspection():
    run("yc = lat.ones(2)")
    code = "f = lat.attack.pg"
    reply = shell_reply(kc.complete(code, len(code)), 30)["content"]
    assert "lat.attack.pgd" in reply["matches"] and reply["cursor_start"] == 4, reply
    reply = shell_reply(kc.complete("yc:su", 5), 30)["content"]
    assert "yc:sum" in reply["matches"], reply
    reply = shell_reply(kc.inspect("lat.attack.pgd(model)", 12), 30)["content"]  # the cursor inside "pgd"
    assert reply["found"] and "pgd(model, batch, threat, opts)" in reply["data"]["text/plain"], reply


def test_uninterruptible_loop_restarts_lat():
    # a bare loop that LuaJIT compiles never reaches a point where Lua can stop it: the kernel
    # restarts lat, says so, and the next cell runs in the fresh process
    reply, out = run("lost = 1\nlocal s = 0\nfor i = 1, 1e15 do s = s + i end", interrupt=True, timeout=120)
    assert reply["status"] == "error" and reply["ename"] == "LatRestarted", reply
    reply, out = run("lost == nil and lat ~= nil")
    assert result(out) == "true", out


def test_exit_restarts_lat():
    reply, out = run("os.exit(3)")
    assert reply["status"] == "error" and reply["ename"] == "LatRestarted" and "exit status 3" in reply["evalue"], reply
    reply, out = run("1 + 1")
    assert result(out) == "2", out


try:
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            check(name[5:].replace("_", " "), fn)
finally:
    kc.stop_channels()
    km.shutdown_kernel(now=True)
print("%d failed" % failures)
sys.stdout.flush()
os._exit(1 if failures else 0)  # skips jupyter_client's noisy finalisers
