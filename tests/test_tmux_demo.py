"""The real binary in a real terminal: `fmp-install demo` driven through tmux.

It starts the lab, opens the wizard with the lab's hosts, walks every screen
with the keyboard, installs, and reads the Done screen back from the pane.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.labkit import cli

SCREENS = ("Checks", "Profile", "Roles", "Disks", "Storage", "Review")
# While a screen works in the background its Next is disabled and says why; a
# person waits for these to go before pressing Next, and so does the test.
BUSY = ("Checks are running…", "Building the plan…", "No plan yet")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def pane(session: str) -> str:
    return tmux("capture-pane", "-t", session, "-p")


def wait_for(session: str, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = pane(session)
        if text in screen:
            return screen
        time.sleep(1)
    raise AssertionError(f"{text!r} did not appear in {timeout:.0f}s; the pane shows:\n{screen}")


def header(screen: str) -> str:
    return screen.splitlines()[0] if screen else ""


def press_next_when_ready(session: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(busy in (screen := pane(session)) for busy in BUSY):
        assert time.monotonic() < deadline, f"the screen stayed busy:\n{screen}"
        time.sleep(0.5)
    tmux("send-keys", "-t", session, "C-n")


@pytest.mark.slow
def test_demo_full_install_through_tmux(tmp_path: Path) -> None:
    require_tool("tmux")
    exe = shutil.which("fmp-install") or f"{sys.executable} -m installer.cli"
    session = f"fmp-{uuid.uuid4().hex[:8]}"
    lab_dir = tmp_path / "lab"
    status = tmp_path / "exit-status"
    env = f"cd {tmp_path} && TERM=xterm-256color"
    tmux(
        "new-session", "-d", "-s", session, "-x", "120", "-y", "40",
        # The pause lets the resize below land before the wizard draws its first screen.
        f"sleep 2; {env} {exe} demo --dir {lab_dir}; echo $? > {status}; sleep 600",
    )  # fmt: skip
    # A detached session may keep tmux's default size; the test reads a 120x40 screen.
    tmux("set-option", "-t", session, "window-size", "manual")
    tmux("resize-window", "-t", session, "-x", "120", "-y", "40")
    try:
        wait_for(session, "All 6 hosts discovered", 300)
        for name in SCREENS:
            press_next_when_ready(session, 300)
            # The breadcrumb frames the current screen's name with two spaces.
            deadline = time.monotonic() + 120
            while f"  {name}  " not in header(pane(session)):
                assert time.monotonic() < deadline, f"no {name} screen:\n{pane(session)}"
                time.sleep(0.5)
        wait_for(session, "steps on 6 hosts", 300)  # the plan is built
        press_next_when_ready(session, 300)
        wait_for(session, "Install now?", 60)
        tmux("send-keys", "-t", session, "Enter")
        wait_for(session, "✓ lab installed", 1200)  # the Install screen's verdict
        tmux("send-keys", "-t", session, "C-n")  # Finish
        done = wait_for(session, "is installed", 60)
        assert "✓ Cluster lab is installed" in done
        assert "kubectl get nodes" in done
        assert "https://127.0.0.100:8443" in done
        tmux("send-keys", "-t", session, "C-n")  # Quit from Done
        deadline = time.monotonic() + 120
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(1)
        assert status.read_text().strip() == "0"
        assert not (lab_dir / "state" / "lab.json").exists(), "demo stops its lab on exit"
    finally:
        tmux("kill-session", "-t", session)
        if (lab_dir / "state" / "lab.json").exists():
            cli("lab", "down", "--dir", str(lab_dir))
