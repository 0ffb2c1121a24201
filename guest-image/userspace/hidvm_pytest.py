# pytest plugin of `hidvm hid-tools` (`-p hidvm_pytest`), delivered with each
# run (not part of the userspace image, so editing it rebuilds nothing).
#
# For every test it writes
# * to the kernel log: `hidvm: pytest start <nodeid>` and `hidvm: pytest end
#   <nodeid> ...`, so a kernel report on the console is attributed to the
#   test that was running (the host reads these like the agent's step
#   markers; the kernel needs printk.devkmsg=on or it rate-limits them);
# * to stdout, beside pytest-tap's TAP stream, one `@hidvm-pytest` line per
#   event: the node id of each test in the order its TAP result comes (TAP
#   names are not node ids and are not unique), and what the TAP stream does
#   not carry: a failure in a test's teardown (`udev-hid-bpf remove` runs
#   there), the taint flags and the pytest process's memory after each test.
import sys

import pytest

_kmsg = None
_PREFIX = "@hidvm-pytest "


def _mark(text):
    global _kmsg
    try:
        if _kmsg is None:
            _kmsg = open("/dev/kmsg", "w", buffering=1)
        # <5> = KERN_NOTICE; a kmsg record holds at most ~1 KB.
        _kmsg.write(f"<5>hidvm: {text}"[:976] + "\n")
    except OSError:
        pass


def _say(text):
    sys.stdout.write(_PREFIX + text.replace("\n", " ") + "\n")
    sys.stdout.flush()


def _read(path, field=None):
    try:
        with open(path) as f:
            if field is None:
                return f.read().strip()
            for line in f:
                if line.startswith(field):
                    return line.split()[1]
    except OSError:
        pass
    return "?"


def _why(report):
    """One line: pytest's `E ` lines and what udev-hid-bpf said."""
    text = report.longreprtext or ""
    lines = [l[1:].strip() for l in text.splitlines() if l.startswith("E ")]
    for _, content in report.sections:
        lines += [l.strip() for l in content.splitlines() if l.startswith("udev-hid-bpf")]
    if not lines:
        lines = [l.strip() for l in text.splitlines() if l.strip()][-1:]
    return " | ".join(lines)[:600]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logstart(nodeid, location):
    _mark(f"pytest start {nodeid}")
    _say(f"start {nodeid}")


def pytest_runtest_logreport(report):
    if report.when == "teardown" and report.failed:
        _say(f"teardown-failed {report.nodeid}\t{_why(report)}")
    if report.failed:
        _mark(f"pytest {report.when} failed {report.nodeid}")


@pytest.hookimpl(trylast=True)
def pytest_runtest_logfinish(nodeid, location):
    taint = _read("/proc/sys/kernel/tainted")
    rss = _read("/proc/self/status", "VmRSS:")
    _mark(f"pytest end {nodeid} taint={taint} rss={rss}kB")
    _say(f"end {nodeid}\ttaint={taint} rss={rss}")
