#!/usr/bin/python3
"""Runs a command under the system-call filter a systemd unit declares.

usage: seccomp-exec.py [--mdwe] UNIT -- COMMAND [ARG]...

For tests on machines where systemd is not PID 1 (CI, containers): reads
UNIT's SystemCallFilter= lines as systemd does (the first allow-list, then
`~` lines taking groups or calls away), expands every @group with systemd's
own definitions (`systemd-analyze syscall-filter`), answers every other
call with SystemCallErrorNumber= (EPERM by default), sets no_new_privs as
NoNewPrivileges=yes does, and execs COMMAND.

--mdwe also turns on the kernel's memory-deny-write-execute
(prctl PR_SET_MDWE, Linux 6.3+), which is what MemoryDenyWriteExecute=yes
asks for: no mapping may become executable after it was writable.

Needs Debian's python3-seccomp (libseccomp's bindings).
"""
import ctypes, errno, os, subprocess, sys

import seccomp


def groups():
    """Every @group systemd knows, with its members (calls and @groups)."""
    out = subprocess.run(['systemd-analyze', 'syscall-filter'], check=True,
                         capture_output=True, text=True).stdout
    found, current = {}, None
    for line in out.splitlines():
        if line.startswith('@'):
            current = found.setdefault(line.strip(), [])
        elif current is not None and line.strip() and not line.strip().startswith('#'):
            current.append(line.strip())
    return found


def expand(names, known, seen=None):
    seen = set() if seen is None else seen
    calls = set()
    for name in names:
        if name.startswith('@'):
            if name in seen:
                continue
            seen.add(name)
            calls |= expand(known[name], known, seen)
        else:
            calls.add(name)
    return calls


def unit_filter(unit):
    """The calls UNIT allows, and the errno the others get."""
    known = groups()
    allowed, error = None, errno.EPERM
    for line in open(unit):
        line = line.strip()
        if line.startswith('SystemCallErrorNumber='):
            error = getattr(errno, line.split('=', 1)[1])
        if not line.startswith('SystemCallFilter='):
            continue
        value = line.split('=', 1)[1]
        deny = value.startswith('~')
        calls = expand(value.lstrip('~').split(), known)
        if allowed is None:
            if deny:
                sys.exit('seccomp-exec: a deny-list unit is not supported here')
            allowed = calls
        elif deny:
            allowed -= calls
        else:
            allowed |= calls
    if allowed is None:
        sys.exit(f'seccomp-exec: {unit} has no SystemCallFilter=')
    return allowed, error


def main():
    args = sys.argv[1:]
    mdwe = args[:1] == ['--mdwe']
    if mdwe:
        args = args[1:]
    unit, sep, command = args[0], args[1], args[2:]
    assert sep == '--' and command, __doc__
    allowed, error = unit_filter(unit)
    if mdwe:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
        if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
            sys.exit(f'seccomp-exec: prctl(PR_SET_MDWE) failed: {os.strerror(ctypes.get_errno())}')
    f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(error))
    unknown = []
    for call in sorted(allowed):
        try:
            f.add_rule(seccomp.ALLOW, call)
        except (RuntimeError, ValueError, OSError):
            unknown.append(call)  # not a call on this architecture
    f.load()  # sets no_new_privs first (libseccomp's default)
    os.execvp(command[0], command)


main()
