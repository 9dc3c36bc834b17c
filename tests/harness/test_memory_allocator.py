"""The allocator setting of the computing verbs: large blocks from the heap instead of a fresh
mmap each (what glibc's mallinfo2 counts as hblkhd), and left alone where the user chose."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's")

PROBE = """
import ctypes, json, sys
import numpy as np

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2

def mapped_by_a_large_block():
    before = libc.mallinfo2().hblkhd
    block = np.ones(64 << 20, np.uint8)  # 64 MiB: above glibc's largest mmap threshold (32 MiB)
    return libc.mallinfo2().hblkhd - before

first = mapped_by_a_large_block()
said = ""
if sys.argv[1] == "function":
    from harness.memory_allocator import keep_freed_memory
    said = keep_freed_memory()
else:
    from harness.cli import main
    main(sys.argv[1:])  # a verb; the task name is unknown, so nothing runs after the setting
print(json.dumps({"before": first, "after": mapped_by_a_large_block(), "said": said}))
"""


def probe(*args: str, **env: str) -> dict:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "HARNESS_ALLOCATOR"}
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env={**environment, **env}, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_large_blocks_come_from_the_heap_once_set():
    result = probe("function")
    assert result["before"] >= 64 << 20  # glibc's default: a fresh mapping
    assert result["after"] == 0 and "freed memory kept up to 1024 MiB" in result["said"]


@pytest.mark.parametrize("env, reason", [({"HARNESS_ALLOCATOR": "system"}, "HARNESS_ALLOCATOR=system"),
                                         ({"MALLOC_TRIM_THRESHOLD_": "131072"}, "MALLOC_TRIM_THRESHOLD_ is set"),
                                         ({"LD_PRELOAD": "/nonexistent/libjemalloc.so.2"}, "another allocator")])
def test_left_alone_where_the_user_chose(env, reason):
    result = probe("function", **env)
    assert result["after"] >= 64 << 20 and reason in result["said"]


def test_run_sets_it_and_list_does_not():
    assert probe("run", "--tasks", "no-such-task")["after"] == 0
    assert probe("list", "--include", "/nonexistent.yaml")["after"] >= 64 << 20


def test_an_unknown_setting_is_one_line_and_nothing_runs(tmp_path):
    done = subprocess.run([sys.executable, "-m", "harness", "run", "--tasks", "synth-tiles", "--output",
                           str(tmp_path / "results")], env={**os.environ, "HARNESS_ALLOCATOR": "jemalloc"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: HARNESS_ALLOCATOR='jemalloc': use 'system' (glibc's defaults) or "
                                   "'harness' (the default), or unset it")
    assert not (tmp_path / "results").exists()
