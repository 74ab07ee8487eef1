"""Cell lists of the lifecycle pattern notebooks: errors, error and exit ports, pause, kill, commands.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

ERROR_HANDLING = [
    (MD, """# Error handling in isolates

A failure inside an isolate must reach someone. In Dart, `Isolate.run` re-throws the worker's
exception in the caller; with `Isolate.spawn`, expected errors are caught by the worker and sent
as ordinary messages, and uncaught ones go to the `onError` port. stemnb follows the same
three routes: `stemnb.run` re-raises the original exception type (the remote traceback is its
`__cause__`), workers send errors through their ports, and `spawn(..., on_error=port)` receives
uncaught ones."""),
    (PY, "import os\n\nimport stemnb"),
    (MD, "## `run` propagates the exception"),
    (PY, """def fail():
    raise RuntimeError("Something went wrong in isolate")

try:
    stemnb.run(fail).result(timeout=60)
except RuntimeError as exc:
    print("Caught error from stemnb.run:", repr(exc))
    print("remote traceback attached:", type(exc.__cause__).__name__)
    print("it names the function:", "in fail" in str(exc.__cause__))"""),
    (MD, "## The worker catches and reports through its port\n\nThe Dart example's `faultyWorker` "
         "reads past the end of a list and sends the error text as a normal message."),
    (PY, """def faulty_worker(send_port):
    try:
        numbers = [1, 2, 3]
        send_port.send(numbers[10])
    except IndexError as exc:
        send_port.send(f"Error: {exc}")

receive_port = stemnb.ReceivePort()
await stemnb.spawn(faulty_worker, receive_port.send_port)
print("Received:", await receive_port.first())"""),
    (MD, "## Uncaught errors go to the error port\n\nEach error arrives as Dart's pair of "
         "message and stack trace, plus a `RemoteError` holding both. Normal messages and "
         "errors come through different ports, so the main isolate tells them apart."),
    (PY, """def crashing_worker(send_port):
    send_port.send("about to fail")
    raise ValueError("bad input 42")

messages = stemnb.ReceivePort()
errors = stemnb.ReceivePort()
exits = stemnb.ReceivePort()
await stemnb.spawn(crashing_worker, messages.send_port,
                   on_error=errors.send_port, on_exit=exits.send_port)
print("Received:", messages.receive(timeout=60))
message, stack_trace, remote = errors.receive(timeout=60)
print("Error port received:", message)
print("stack trace ends with:", stack_trace.strip().splitlines()[-1])
print(type(remote).__name__, remote.type_name)
print("exit message:", exits.receive(timeout=60))"""),
    (MD, "## A crashed process is an error too\n\nA process that dies (here `os._exit(3)`; a "
         "segfault or an out-of-memory kill alike) fails its call with `IsolateExitedError`, "
         "carrying the exit code; the pool replaces the process and later calls work."),
    (PY, """try:
    stemnb.run(os._exit, 3).result(timeout=60)
except stemnb.IsolateExitedError as exc:
    print("IsolateExitedError, exit code", exc.exitcode)
print("next call:", stemnb.run(abs, -5).result(timeout=60))"""),
    (PY, """for port in (messages, errors, exits):
    port.close()
stemnb.default_pool().close()
print("ports and default pool closed")"""),
]

ERROR_PORT = [
    (MD, """# The isolate error port

An error port is a dedicated channel for a worker's uncaught errors, apart from its normal
messages. Dart delivers each error as a two-element list, `[message, stack trace]`, to the port
given as `onError` or registered with `addErrorListener`. stemnb sends
`[message, stack trace, RemoteError]` to the same kinds of port: `spawn(..., on_error=port)`
and `isolate.add_error_listener(port)`."""),
    (PY, "import stemnb"),
    (MD, "## An uncaught error in the entry function\n\n`risky_worker(0)` divides by zero."),
    (PY, """def risky_worker(value):
    if value < 0:
        raise ValueError("Negative input not allowed")
    return 100 // value

error_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(risky_worker, 0, on_error=error_port.send_port, on_exit=exit_port.send_port)
error_data = error_port.receive(timeout=60)
print("Error captured:")
print("  Message:", error_data[0])
print("  Stack trace (last line):", error_data[1].strip().splitlines()[-1])
print("  RemoteError:", error_data[2].type_name)
print("isolate ended:", exit_port.receive(timeout=60) is None)"""),
    (MD, "## Errors that are not fatal\n\nWith `errors_are_fatal=False`, an uncaught error in "
         "one event (here a `listen` callback) is reported and the isolate keeps serving the next "
         "messages. The listener is added after the spawn with `add_error_listener`."),
    (PY, """def divider(reply_to):
    inbox = stemnb.ReceivePort()
    inbox.listen(lambda divisor: reply_to.send(f"100 / {divisor} = {100 // divisor}"))
    reply_to.send(inbox.send_port)    # entry returns; the open port keeps the isolate alive

replies = stemnb.ReceivePort()
isolate = await stemnb.spawn(divider, replies.send_port, errors_are_fatal=False, debug_name="divider")
isolate.add_error_listener(error_port.send_port)
inbox = replies.receive(timeout=60)
for divisor in (4, 0, 5):
    inbox.send(divisor)
print(replies.receive(timeout=60))
print(replies.receive(timeout=60))
print("error port:", error_port.receive(timeout=60)[0])
print("still alive:", isolate.is_alive)"""),
    (MD, "## Removing the listener, then ending the isolate"),
    (PY, """isolate.remove_error_listener(error_port.send_port)
isolate.add_on_exit_listener(exit_port.send_port, "divider ended")
isolate.kill()
print(exit_port.receive(timeout=60))
for port in (error_port, exit_port, replies):
    port.close()"""),
]

EXIT_PORT = [
    (MD, """# The isolate exit port

A supervisor often needs to know when a worker has ended, to clean up or to start a new one.
Dart sends a message to the `onExit` port (or a port registered with `addOnExitListener`) once
the isolate terminates, normally or by error; the message is `null` unless a response was
given. stemnb does the same: `spawn(..., on_exit=port)` sends `None`, and
`isolate.add_on_exit_listener(port, response)` sends `response`, exactly once, however the
isolate ended: return, error, kill or crash."""),
    (PY, "import os\n\nimport stemnb"),
    (MD, "## A short-lived worker"),
    (PY, """def short_lived_worker(send_port):
    send_port.send("Starting work")
    send_port.send(f"Work complete: {sum(range(1000))}")
    # the isolate exits when its entry returns (it has no open receive port)

receive_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
isolate = await stemnb.spawn(short_lived_worker, receive_port.send_port, on_exit=exit_port.send_port)
for _ in range(2):
    print("Received:", receive_port.receive(timeout=60))
print("Isolate exited with message:", exit_port.receive(timeout=60))"""),
    (MD, "## A custom response, whatever the way out\n\nThe same listener fires for an error, "
         "for `Isolate.exit` (which also sends a last message, as Dart's does), and for a crash."),
    (PY, """def raises(_):
    raise RuntimeError("boom")

def exits_with_result(port):
    stemnb.Isolate.exit(port, "last message before exit")

def crashes(_):
    os._exit(9)

for entry, message in ((raises, None), (exits_with_result, receive_port.send_port), (crashes, None)):
    isolate = await stemnb.spawn(entry, message)
    isolate.add_on_exit_listener(exit_port.send_port, response=f"{entry.__name__} has ended")
    print(exit_port.receive(timeout=60))
print("Received:", receive_port.receive(timeout=60))"""),
    (MD, "## Listening after the end\n\nA listener added to an isolate that has already ended "
         "gets its response at once, so a supervisor never waits forever."),
    (PY, """print("alive:", isolate.is_alive)
isolate.add_on_exit_listener(exit_port.send_port, "already gone")
print(exit_port.receive(timeout=60))"""),
    (MD, "## Restarting a failed worker\n\nThe exit port is how a supervisor knows to start a "
         "replacement: here a worker that fails twice before it succeeds."),
    (PY, """def flaky_worker(args):
    attempt, results = args
    if attempt < 3:
        raise RuntimeError(f"attempt {attempt} failed")
    results.send(f"attempt {attempt} succeeded")

results = stemnb.ReceivePort()
for attempt in range(1, 4):
    await stemnb.spawn(flaky_worker, (attempt, results.send_port), on_exit=exit_port.send_port)
    exit_port.receive(timeout=60)
    print(f"attempt {attempt}: worker exited")
print(results.receive(timeout=60))
for port in (receive_port, exit_port, results):
    port.close()"""),
]

PAUSE_RESUME = [
    (MD, """# Pausing and resuming isolates

`isolate.pause()` stops an isolate from handling events and returns a `Capability`;
`isolate.resume(capability)` lets it continue. Messages sent meanwhile wait in the queue, so
pausing is a tool for flow control and backpressure. stemnb's `Isolate.pause`/`resume` behave
the same: when `pause()` returns the pause is in force, no message is lost, and the isolate
runs again only once every pausing capability has been resumed."""),
    (PY, "import stemnb"),
    (PY, """def counter(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    for message in inbox:
        if message == "stop":
            break
        reply_to.send(f"Count: {message}")
    inbox.close()

replies = stemnb.ReceivePort()
exits = stemnb.ReceivePort()
isolate = await stemnb.spawn(counter, replies.send_port, on_exit=exits.send_port, debug_name="counter")
inbox = replies.receive(timeout=60)
for n in range(1, 3):
    inbox.send(n)
    print(replies.receive(timeout=60))"""),
    (MD, "## Messages wait while the isolate is paused"),
    (PY, """print("Pausing isolate...")
capability = isolate.pause()
for n in range(3, 6):
    inbox.send(n)
try:
    replies.receive(timeout=0.5)
except TimeoutError:
    print("no answer while paused")
print("Resuming isolate...")
isolate.resume(capability)
for _ in range(3):
    print(replies.receive(timeout=60))   # none lost, still in order"""),
    (MD, "## Several pauses need several resumes\n\nEach `pause()` gets its own capability, and a "
         "capability that does not pause the isolate is refused."),
    (PY, """first, second = isolate.pause(), isolate.pause()
inbox.send(6)
isolate.resume(first)
try:
    replies.receive(timeout=0.5)
except TimeoutError:
    print("still paused by the second capability")
try:
    isolate.resume(first)
except stemnb.CapabilityError:
    print("CapabilityError: that capability was already resumed")
isolate.resume(second)
print(replies.receive(timeout=60))"""),
    (MD, "## `ping` while paused\n\nAn `IMMEDIATE` ping is answered even by a paused isolate; a "
         "`BEFORE_NEXT_EVENT` ping waits for the resume, like every other event."),
    (PY, """pongs = stemnb.ReceivePort()
capability = isolate.pause()
isolate.ping(pongs.send_port, "immediate pong", priority=stemnb.Isolate.IMMEDIATE)
isolate.ping(pongs.send_port, "pong after resume", priority=stemnb.Isolate.BEFORE_NEXT_EVENT)
print(pongs.receive(timeout=60))
isolate.resume(capability)
print(pongs.receive(timeout=60))"""),
    (MD, "## Spawning paused\n\n`spawn(..., paused=True)` starts the process but holds the entry "
         "function until `isolate.pause_capability` is resumed."),
    (PY, """held = await stemnb.spawn(lambda port: port.send("entry ran"), pongs.send_port, paused=True)
try:
    pongs.receive(timeout=0.5)
except TimeoutError:
    print("entry held while paused")
held.resume(held.pause_capability)
print(pongs.receive(timeout=60))"""),
    (PY, """inbox.send("stop")
print("exit message:", exits.receive(timeout=60))
for port in (replies, exits, pongs):
    port.close()"""),
]

KILLING = [
    (MD, """# Killing isolates

A worker that is no longer needed, or that never stops on its own, is ended with
`isolate.kill()`. Dart offers two priorities: `Isolate.immediate` ends it now, and
`Isolate.beforeNextEvent` lets the current event finish first. stemnb's `isolate.kill()` takes
the same two, `stemnb.Isolate.IMMEDIATE` and `stemnb.Isolate.BEFORE_NEXT_EVENT` (the default);
the exit port confirms the end."""),
    (PY, "import asyncio\nimport time\n\nimport stemnb"),
    (MD, "## An endless worker, killed immediately"),
    (PY, """async def endless_worker(send_port):
    count = 0
    while True:
        count += 1
        send_port.send(f"Message {count}")
        await asyncio.sleep(0.01)

receive_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
isolate = await stemnb.spawn(endless_worker, receive_port.send_port, on_exit=exit_port.send_port)
for _ in range(5):
    print(receive_port.receive(timeout=60))
print("Killing isolate...")
isolate.kill(priority=stemnb.Isolate.IMMEDIATE)
print("exit message:", exit_port.receive(timeout=60))
print("alive:", isolate.is_alive)
receive_port.close()     # later messages, if any were in flight, are dropped"""),
    (MD, "## Before the next event\n\nThe worker is busy with a slow job when the kill arrives: "
         "that job finishes and its answer is sent, but the queued job after it never starts."),
    (PY, """def job_worker(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    for job in inbox:
        reply_to.send(f"started {job}")
        time.sleep(1.0)                  # a slow job: the kill below arrives meanwhile
        reply_to.send(f"finished {job}")

replies = stemnb.ReceivePort()
isolate = await stemnb.spawn(job_worker, replies.send_port, on_exit=exit_port.send_port)
inbox = replies.receive(timeout=60)
inbox.send("slow job")
inbox.send("queued job")
print(replies.receive(timeout=60))       # the slow job is running now
isolate.kill(priority=stemnb.Isolate.BEFORE_NEXT_EVENT)
print(replies.receive(timeout=60))
print("exit message:", exit_port.receive(timeout=60))
try:
    replies.receive(timeout=0.5)
except TimeoutError:
    print("the queued job never started")"""),
    (MD, "## A dead isolate\n\nKilling again is harmless; pausing it raises `ClosedError`."),
    (PY, """isolate.kill()
try:
    isolate.pause()
except stemnb.ClosedError:
    print("ClosedError: the isolate has ended")
replies.close()
exit_port.close()
print("Main isolate done")"""),
]

COMMANDS = [
    (MD, """# Long-running isolate with the command pattern

A long-running worker serves many requests over its life: it loops over its port and switches
on the command type. Each command carries its own reply port, so answers reach the right
caller, and one `exit` command ends the loop. In stemnb the command can be any picklable
object, here a dataclass defined in the notebook, and a `SendPort` travels inside it."""),
    (PY, "from dataclasses import dataclass\nfrom typing import Any\n\nimport stemnb"),
    (PY, """@dataclass
class Command:
    type: str
    data: Any = None
    reply_port: stemnb.SendPort | None = None

def command_processor(main_send_port):
    command_port = stemnb.ReceivePort()
    main_send_port.send(command_port.send_port)
    for message in command_port:
        match message.type:
            case "square":
                message.reply_port.send(message.data * message.data)
            case "sum":
                message.reply_port.send(sum(message.data))
            case "exit":
                command_port.close()
                return
            case _:
                message.reply_port.send(f"Unknown command: {message.type}")"""),
    (MD, "## Start the processor and send commands\n\nEach request gets a fresh reply port; "
         "`first()` waits for the one answer and closes it."),
    (PY, """main_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(command_processor, main_port.send_port,
                   on_exit=exit_port.send_port, debug_name="commands")
command_sender = await main_port.first()

async def request(command_type, data=None):
    reply_port = stemnb.ReceivePort()
    command_sender.send(Command(command_type, data, reply_port.send_port))
    return await reply_port.first()

print("Square result:", await request("square", 7))
print("Sum result:", await request("sum", [1, 2, 3, 4, 5]))
print(await request("cube", 3))"""),
    (MD, "## Many requests in flight\n\nRequests from several coroutines interleave; each "
         "answer still reaches its own caller."),
    (PY, """import asyncio

answers = await asyncio.gather(*(request("square", n) for n in range(1, 9)))
print(answers)"""),
    (MD, "## Shut down"),
    (PY, """command_sender.send(Command("exit"))
print("exit message:", exit_port.receive(timeout=60))
exit_port.close()"""),
]

NOTEBOOKS = {
    "07_error_handling.ipynb": ERROR_HANDLING,
    "08_error_port.ipynb": ERROR_PORT,
    "09_exit_port.ipynb": EXIT_PORT,
    "10_pausing_and_resuming.ipynb": PAUSE_RESUME,
    "11_killing_isolates.ipynb": KILLING,
    "12_command_pattern.ipynb": COMMANDS,
}
