#!/usr/bin/env python3
"""Runs a command with its stdin and stderr on a pseudo-terminal; its stdout stays this process's
stdout (a pipe). What the command writes to the terminal, and what the terminal echoes, comes
out on this process's stderr; what is written to this process's stdin is typed into the
terminal. Exits with the command's exit code. For tests of what a command does on a terminal."""
import os
import pty
import select
import subprocess
import sys

master, slave = pty.openpty()
child = subprocess.Popen(sys.argv[1:], stdin=slave, stderr=slave, start_new_session=True)
os.close(slave)
typing = True


def relay():
    try:
        data = os.read(master, 65536)
    except OSError:  # EIO: the terminal's last user is gone
        return False
    if data:
        os.write(2, data)
    return bool(data)


while child.poll() is None:
    ready, _, _ = select.select([master] + ([0] if typing else []), [], [], 0.05)
    if master in ready:
        relay()
    if typing and 0 in ready:
        data = os.read(0, 65536)
        if data:
            os.write(master, data)
        else:
            typing = False
# what the command wrote just before it exited
while select.select([master], [], [], 0)[0] and relay():
    pass
sys.exit(child.returncode)
