"""The README's "Your first cluster", run as written: `berth dev`, an image made without a
registry, a task, a second agent, then three servers and an agent that knows all three; with a
Docker Engine and without one.

What runs comes from README.md itself. An HTML comment (which a reader of the rendered page
does not see) right before each ```sh block of the section says how to run it:

    <!-- first-cluster: terminal NAME ready="TEXT" -->  a long-running command in a terminal of
        its own: started in the background, ready once its stdout shows the line TEXT
    <!-- first-cluster: run [docker] [wait="FILE: TEXT"]... -->  typed into the reader's other
        terminal: one bash for the whole section, so `export`s and background jobs (`&`, `%1`)
        carry from block to block as they do for a reader; `docker`: only with Docker (skipped
        without it, as the README says); each `wait`: afterwards, poll until FILE (in the
        working directory) holds TEXT, as a reader waits for a background job to be ready
    <!-- first-cluster: interrupt NAME -->  (no block) Ctrl-C in that terminal: SIGINT, and it
        must exit 0
    <!-- first-cluster: skip (WHY) -->  not run

A ```text block right after a ```sh block is what the block prints on stdout (stderr is only
shown when something fails), checked line by line after collapsing runs of blanks (table
columns widen with their contents); a block without one must print nothing. In the expected
text, `…` stands for any text within a line, a line holding only `…` for any number of lines,
and ids (32 hex digits), timestamps and image digests stand for any others of their kind.
Every ```sh block of the section must carry a comment, so none goes untested by accident.
Beyond what is printed, the test checks what the output only hints at: which runtime the
dev agent chose, that the task's output came from a container of the image the README built
(or from a host process, without Docker), and that `--distinct-instance` used the new agent.

Substitutions, and nothing else: the working directory is a fresh empty one; the binary under
test (BERTH_BIN) and this venv's `aws` come first on PATH (the README asks for `berth` on
PATH); the user's AWS configuration is hidden (empty config and credentials files, as
everywhere in this suite). The ports the README names (8642, 8701-8703) are replaced,
wherever they appear in a block, its expected output or a wait, by free ones, so the test
neither collides with another berth on this machine nor with itself; `berth dev`, whose block
names no port, gets the stand-in of its default 8642 through BERTH_LISTEN. Agents keep their
default log port, 51678 (no other test uses it; the section runs one extra agent at a time).

Without Docker, DOCKER_HOST points at a socket that does not exist: `berth dev` and the agents
then run tasks as host processes. With Docker, the Docker variant fails rather than skips when
CI=true. Whatever happens, every process the section started is stopped at the end: the
terminals, the shell's process group (its background jobs), anything still running from the
working directory (host-process tasks), and the Docker containers of the section's agents.
"""

from __future__ import annotations

import difflib
import json
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import (
    DOCKER_NOWHERE,
    READY_TIMEOUT,
    BerthProcess,
    docker_unavailable,
    scrubbed_environ,
)

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Your first cluster"
DIRECTIVE = re.compile(r"^<!--\s*first-cluster:\s*(?P<args>.*?)\s*-->\s*$")
# The ports the README names: the first is `berth dev`'s default.
DOCUMENTED_PORTS = (8642, 8701, 8702, 8703)
DEV_PORT = 8642
ELLIPSIS = "…"
# What differs from run to run, and stands for any other of its kind.
VARYING = (
    (re.compile(r"sha256:[0-9a-f]{64}"), "sha256:<digest>"),
    (re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"), "<id>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
)
INSTANCE_ARN = re.compile(r"arn:aws:ecs:[a-z0-9-]+:\d{12}:container-instance/[\w-]+/[0-9a-f]{32}")
# How long one block may take (2 cores shared with builds, a debug binary).
BLOCK_TIMEOUT = 120.0
WAIT_TIMEOUT = 30.0
LABEL_INSTANCE = "com.berth.instance-arn"


# --------------------------------------------------------------------------------------------
# The section, read from the README
# --------------------------------------------------------------------------------------------


@dataclass
class Step:
    kind: str  # terminal | run | interrupt | skip
    line: int  # in README.md, 1-based
    name: str = ""
    ready: str = ""
    docker: bool = False
    waits: list[tuple[str, str]] = field(default_factory=list)
    code: str = ""
    expected: list[str] | None = None

    def where(self) -> str:
        return f"README.md:{self.line}"


def fenced(lines: list[str], i: int, info: str) -> tuple[list[str], int] | None:
    """The body of the fenced block with `info` starting at line i (blank lines before it
    skipped), and the index after its closing fence; None when there is none."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip() != f"```{info}":
        return None
    end = i + 1
    while end < len(lines) and lines[end].strip() != "```":
        end += 1
    assert end < len(lines), f"README.md: unclosed ```{info} block at line {i + 1}"
    return lines[i + 1 : end], end + 1


def section_steps(text: str) -> list[Step]:
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == SECTION)
    except StopIteration:
        pytest.fail(f"README.md has no {SECTION!r} section", pytrace=False)
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
    )
    steps: list[Step] = []
    marked: set[int] = set()  # the ```sh fences that follow a comment
    i = start
    while i < end:
        m = DIRECTIVE.match(lines[i].strip())
        if not m:
            i += 1
            continue
        words = shlex.split(m.group("args"))
        step = Step(kind=words[0], line=i + 1)
        for word in words[1:]:
            key, has_value, value = word.partition("=")
            if step.kind in ("terminal", "interrupt") and not step.name and not has_value:
                step.name = word
            elif key == "ready" and has_value:
                step.ready = value
            elif word == "docker":
                step.docker = True
            elif key == "wait" and has_value:
                file, sep, wanted = value.partition(":")
                assert sep, f"{step.where()}: wait=FILE: TEXT, got {value!r}"
                step.waits.append((file.strip(), wanted.strip()))
            elif step.kind != "skip":
                pytest.fail(f"{step.where()}: unknown option {word!r}", pytrace=False)
        i += 1
        if step.kind == "interrupt":
            assert step.name, f"{step.where()}: interrupt which terminal?"
            steps.append(step)
            continue
        assert step.kind in ("terminal", "run", "skip"), f"{step.where()}: {step.kind}?"
        while i < end and not lines[i].strip():
            i += 1
        marked.add(i)
        block = fenced(lines, i, "sh")
        assert block, f"{step.where()}: the comment is not followed by a ```sh block"
        body, i = block
        step.code = "\n".join(body) + "\n"
        expected = fenced(lines, i, "text")
        if expected:
            step.expected, i = expected
        if step.kind == "terminal":
            assert step.name and step.ready, f"{step.where()}: terminal NAME ready=TEXT"
        steps.append(step)
    unmarked = [n + 1 for n in range(start, end) if lines[n].strip() == "```sh" and n not in marked]
    assert not unmarked, (
        f"README.md: the ```sh blocks at lines {unmarked} have no <!-- first-cluster: ... --> "
        "comment: say how the test runs them (or `skip (why)`)"
    )
    assert any(s.kind == "run" for s in steps), "README.md: the section runs nothing"
    return steps


# --------------------------------------------------------------------------------------------
# Expected output
# --------------------------------------------------------------------------------------------


def normalize(line: str) -> str:
    line = " ".join(line.split())
    for pattern, stand_in in VARYING:
        line = pattern.sub(stand_in, line)
    return line


def trimmed(lines: list[str]) -> list[str]:
    lines = [normalize(line) for line in lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def matches(expected: list[str], actual: list[str]) -> bool:
    pattern = []
    for line in trimmed(expected):
        if line == ELLIPSIS:
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(".*".join(map(re.escape, line.split(ELLIPSIS))) + r"\n")
    text = "".join(line + "\n" for line in trimmed(actual))
    return re.fullmatch("".join(pattern), text) is not None


def check_output(step: Step, stdout: str, stderr: str) -> None:
    actual = stdout.splitlines()
    expected = step.expected if step.expected is not None else []
    if matches(expected, actual):
        return
    diff = "\n".join(
        difflib.unified_diff(
            trimmed(expected), trimmed(actual), "README (normalized)", "printed", lineterm=""
        )
    )
    pytest.fail(
        f"{step.where()}: the block printed something else than the README shows.\n"
        f"--- block ---\n{step.code}--- diff ---\n{diff}\n--- stdout ---\n{stdout}"
        f"--- stderr ---\n{stderr}",
        pytrace=False,
    )


# --------------------------------------------------------------------------------------------
# The reader's terminals
# --------------------------------------------------------------------------------------------


class Shell:
    """The terminal a reader types the `run` blocks into: one bash for the whole section.
    Each block is written to a file outside the working directory and sourced (`set -e`, so
    a failing command ends the shell and the test says which), with stdin from /dev/null."""

    def __init__(self, cwd: Path, env: dict[str, str], scratch: Path):
        self.scratch = scratch
        self.blocks = 0
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.out: queue.Queue[str | None] = queue.Queue()
        self.err: queue.Queue[str | None] = queue.Queue()
        for stream, q in ((self.proc.stdout, self.out), (self.proc.stderr, self.err)):
            threading.Thread(target=self._pump, args=(stream, q), daemon=True).start()
        self._send("set -eo pipefail\n")

    @staticmethod
    def _pump(stream, q: "queue.Queue[str | None]") -> None:
        with stream:
            for line in stream:
                q.put(line)
        q.put(None)

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def run(self, step: Step, code: str) -> tuple[str, str]:
        """Runs one block; its stdout and stderr. Fails the test when the block fails (the
        shell exits, `set -e`) or does not finish within BLOCK_TIMEOUT."""
        self.blocks += 1
        path = self.scratch / f"block-{self.blocks}.sh"
        path.write_text(code)
        marker = f"__first_cluster_block_{self.blocks}_done__"
        self._send(f". {shlex.quote(str(path))} </dev/null\necho {marker}\necho {marker} >&2\n")
        deadline = time.monotonic() + BLOCK_TIMEOUT
        out, out_done = self._read(self.out, marker, deadline)
        err, err_done = self._read(self.err, marker, deadline)
        if not (out_done and err_done):
            try:  # a stream that ended means the shell did: let it be reaped
                ended = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                ended = None
            why = (
                f"failed (the shell exited {ended}: set -e)"
                if ended is not None
                else f"did not finish within {BLOCK_TIMEOUT:.0f}s"
            )
            pytest.fail(
                f"{step.where()}: the block {why}:\n{code}--- stdout ---\n{out}"
                f"--- stderr ---\n{err}",
                pytrace=False,
            )
        return out, err

    @staticmethod
    def _read(q: "queue.Queue[str | None]", marker: str, deadline: float) -> tuple[str, bool]:
        """What the stream printed up to the marker line, and whether the marker came."""
        got: list[str] = []
        while True:
            try:
                line = q.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                return "".join(got), False
            if line is None:
                q.put(None)  # the stream stays ended for the next reader
                return "".join(got), False
            if line.rstrip("\n") == marker:
                return "".join(got), True
            got.append(line)

    def kill(self) -> None:
        """Ends the shell and its background jobs (its process group: no job control)."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=10)
                time.sleep(0.5)  # let the jobs act on the signal too
            except subprocess.TimeoutExpired:
                continue


def start_terminal(step: Step, code: str, cwd: Path, env: dict, logs: Path) -> BerthProcess:
    """A terminal of its own: `bash -c BLOCK` (a single command is exec'ed, so the signals a
    terminal sends reach it), its own session, stdout read line by line."""
    log_path = logs / f"terminal-{step.name}.stderr.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["bash", "-c", code],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            cwd=cwd,
            env=env,
            text=True,
            start_new_session=True,
        )
    p = BerthProcess(args=["bash", "-c", code], proc=proc, log_path=log_path, data_dir=cwd)
    threading.Thread(target=p._pump, daemon=True).start()
    return p


def wait_for(step: Step, cwd: Path, file: str, wanted: str) -> None:
    path = cwd / file
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        text = path.read_text(errors="replace") if path.is_file() else ""
        if wanted in text:
            return
        if time.monotonic() > deadline:
            pytest.fail(
                f"{step.where()}: {file} did not say {wanted!r} within {WAIT_TIMEOUT:.0f}s:\n"
                + (text if len(text) < 4000 else f"{text[:2000]}\n[...]\n{text[-2000:]}"),
                pytrace=False,
            )
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Clean-up: everything the section started, even when it failed halfway
# --------------------------------------------------------------------------------------------


def processes_of(workdir: Path) -> list[int]:
    """Processes running from the working directory (by cwd or command line), and their
    descendants: host-process tasks and their shims outlive the agent that started them."""
    mine = str(workdir)
    parents: dict[int, int] = {}
    seeds: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            stat = (entry / "stat").read_text()
            parents[pid] = int(stat.rsplit(")", 1)[1].split()[1])
            cwd = os.readlink(entry / "cwd")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if (cwd == mine or cwd.startswith(mine + "/") or mine in cmdline) and pid != os.getpid():
            seeds.add(pid)
    found = set(seeds)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return sorted(found)


def containers_of(instance_arn: str) -> list[str]:
    return subprocess.run(
        ["docker", "ps", "-aq", "--no-trunc", "--filter", f"label={LABEL_INSTANCE}={instance_arn}"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()


def container_images(instance_arns: set[str]) -> list[str]:
    """The image of every container of these instances' agents."""
    ids = [c for arn in sorted(instance_arns) for c in containers_of(arn)]
    if not ids:
        return []
    inspect = ["docker", "inspect", "--format", "{{.Config.Image}}", *ids]
    return subprocess.run(inspect, capture_output=True, text=True, timeout=60).stdout.split()


def remove_containers(instance_arns: set[str]) -> None:
    for arn in sorted(instance_arns):
        try:
            ids = containers_of(arn)
            if ids:
                subprocess.run(
                    ["docker", "rm", "-f", "-v", *ids], capture_output=True, timeout=120
                )
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"removing the containers of {arn} failed: {e}")


def instance_arns_in(workdir: Path, texts: list[str]) -> set[str]:
    arns: set[str] = set()
    for text in texts:
        arns.update(INSTANCE_ARN.findall(text))
    for path in workdir.glob("*.log"):
        arns.update(INSTANCE_ARN.findall(path.read_text(errors="replace")))
    return arns


# --------------------------------------------------------------------------------------------
# The test
# --------------------------------------------------------------------------------------------


def free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def substitute(text: str, ports: dict[int, int]) -> str:
    """Each documented port (a whole number, not part of a longer one) → its stand-in."""
    documented = "|".join(map(str, ports))
    return re.sub(rf"(?<!\d)(?:{documented})(?!\d)", lambda m: str(ports[int(m[0])]), text)


@dataclass
class Ran:
    """What each step printed, by README line."""

    stdout: dict[int, str] = field(default_factory=dict)

    def first(self, steps: list[Step], needle: str) -> str:
        """The stdout of the first step that ran a block containing `needle`."""
        ran = (s for s in steps if needle in s.code and s.line in self.stdout)
        return self.stdout[next(ran).line]


def task_rows(stdout: str) -> list[list[str]]:
    return [line.split() for line in stdout.splitlines() if re.match(r"^[0-9a-f]{32}\s", line)]


@pytest.mark.parametrize("docker", ["with Docker", "without Docker"])
def test_the_readme_first_cluster_works_as_written(berth_bin, aws_config_files, tmp_path, docker):
    with_docker = docker == "with Docker"
    if with_docker:
        why = docker_unavailable()
        if why and os.environ.get("CI") == "true":
            pytest.fail(f"Docker is unavailable: {why} (CI runs this with Docker)", pytrace=False)
        if why:
            pytest.skip(f"Docker is unavailable: {why}")

    steps = section_steps(README.read_text())
    workdir = tmp_path / "first-cluster"
    workdir.mkdir()
    scratch = tmp_path / "blocks"
    scratch.mkdir()
    ports = dict(zip(DOCUMENTED_PORTS, free_ports(len(DOCUMENTED_PORTS))))

    env = scrubbed_environ()
    env.update(aws_config_files)  # the user's ~/.aws stays out; the README exports the rest
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env["AWS_PAGER"] = ""
    env["PATH"] = os.pathsep.join(
        [str(berth_bin.parent), str(Path(sys.executable).parent), env.get("PATH", "")]
    )
    if not with_docker:
        env["DOCKER_HOST"] = DOCKER_NOWHERE
    terminal_env = {**env, "BERTH_LISTEN": f"127.0.0.1:{ports[DEV_PORT]}"}

    terminals: dict[str, BerthProcess] = {}
    shell = Shell(workdir, env, scratch)
    ran = Ran()
    started = time.monotonic()
    timings: list[tuple[int, float]] = []
    try:
        for step in steps:
            if step.kind == "skip" or (step.docker and not with_docker):
                continue
            timings.append((step.line, time.monotonic()))
            code = substitute(step.code, ports)
            if step.expected is not None:
                step.expected = [substitute(line, ports) for line in step.expected]
            if step.kind == "terminal":
                p = start_terminal(step, code, workdir, terminal_env, tmp_path)
                terminals[step.name] = p
                lines = p.read_until(lambda line: line.strip() == step.ready, READY_TIMEOUT)
                ran.stdout[step.line] = "\n".join(lines) + "\n"
                check_output(step, ran.stdout[step.line], p.stderr_tail())
            elif step.kind == "interrupt":
                p = terminals[step.name]
                p.stopped = True
                os.killpg(p.proc.pid, signal.SIGINT)
                exit_code = p.proc.wait(timeout=30)
                assert exit_code == 0, (
                    f"{step.where()}: Ctrl-C in {step.name}'s terminal: exit {exit_code}\n"
                    f"{p.stderr_tail()}"
                )
            else:
                out, err = shell.run(step, code)
                ran.stdout[step.line] = out
                check_output(step, out, err)
                for file, wanted in step.waits:
                    wait_for(step, workdir, file, substitute(wanted, ports))
        timings.append((0, time.monotonic()))
        print(f"the section ran in {timings[-1][1] - started:.1f}s ({docker}):")
        for (line, at), (_, then) in zip(timings, timings[1:]):
            print(f"  README.md:{line}  {then - at:5.1f}s")

        # What the outputs only hint at. The dev agent's runtime, as its welcome text says.
        welcome = ran.first(steps, "berth dev")
        assert ("Docker is unavailable" in welcome) != with_docker, welcome
        # The task ran in a container of the image the README built (its host name is the
        # container's id), or as a host process (this host's name).
        hello = ran.first(steps, "berth logs").strip()
        if with_docker:
            assert re.fullmatch(r"hello from [0-9a-f]{12}", hello), hello
        else:
            assert hello == f"hello from {socket.gethostname()}", hello
        # --distinct-instance put the second task on the second agent's instance.
        (first,) = task_rows(ran.first(steps, "berth run web --wait"))
        (second,) = task_rows(ran.first(steps, "--distinct-instance"))[:1]
        assert first[5] != second[5], f"both tasks on instance {first[5]}"
        if with_docker:
            # Every container of the section's agents is of the image the README built.
            image = json.loads((workdir / "web.json").read_text())["containerDefinitions"][0][
                "image"
            ]
            images = container_images(instance_arns_in(workdir, list(ran.stdout.values())))
            assert images and set(images) == {image}, images
    finally:
        for p in terminals.values():
            p.stopped = True
            if p.alive():
                os.killpg(p.proc.pid, signal.SIGTERM)
                try:
                    p.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.proc.pid, signal.SIGKILL)
        shell.kill()
        for pid in processes_of(workdir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if with_docker:
            remove_containers(instance_arns_in(workdir, list(ran.stdout.values())))
