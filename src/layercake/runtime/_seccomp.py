"""The default seccomp filter: system calls a container may not make.

Docker's default profile is an allow-list of some 350 calls; this filter
is the deny side of it, written as a classic BPF program by hand so no
library is needed. A call is refused with EPERM when the kernel does not
namespace what it touches (keyrings, kernel modules, the clock, kexec,
swap, accounting, io_uring) or when it belongs to a capability the
container does not hold (mount and namespace calls without SYS_ADMIN,
``open_by_handle_at`` without DAC_READ_SEARCH, ...). ``clone`` may not
create namespaces without SYS_ADMIN, and ``clone3`` answers ENOSYS so that
C libraries fall back to ``clone``, whose flags a filter can see. Calls of
another ABI (32-bit or x32 on x86-64) end the process: the numbers below
are only right for the native one.
"""

from __future__ import annotations

import errno
import functools
import platform
import struct
from typing import Any

from ._capabilities import NAMES

__all__ = ["filter_program", "oci_profile"]

# Calls refused unless the container holds the capability (None: always).
_GATED: dict[str | None, tuple[str, ...]] = {
    None: (
        "add_key",
        "keyctl",
        "request_key",
        "userfaultfd",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "uselib",
        "_sysctl",
        "create_module",
        "get_kernel_syms",
        "query_module",
        "sysfs",
        "ustat",
        "nfsservctl",
    ),
    "SYS_ADMIN": (
        "mount",
        "umount2",
        "pivot_root",
        "unshare",
        "setns",
        "swapon",
        "swapoff",
        "quotactl",
        "lookup_dcookie",
        "bpf",
        "perf_event_open",
        "name_to_handle_at",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "move_mount",
        "open_tree",
        "mount_setattr",
    ),
    "SYS_MODULE": ("init_module", "finit_module", "delete_module"),
    "SYS_BOOT": ("reboot", "kexec_load", "kexec_file_load"),
    "SYS_TIME": ("settimeofday", "clock_settime", "clock_adjtime"),
    "DAC_READ_SEARCH": ("open_by_handle_at",),
    "SYS_PACCT": ("acct",),
    "SYS_RAWIO": ("iopl", "ioperm"),
    "SYS_PTRACE": ("process_vm_readv", "process_vm_writev", "kcmp"),
    "SYSLOG": ("syslog",),
    "SYS_TTY_CONFIG": ("vhangup",),
}

# Numbers from the kernel's unistd tables; aarch64 uses the generic table.
_X86_64 = {
    "acct": 163, "add_key": 248, "bpf": 321, "clock_adjtime": 305,
    "clock_settime": 227, "clone": 56, "clone3": 435, "create_module": 174,
    "delete_module": 176, "finit_module": 313, "fsconfig": 431, "fsmount": 432,
    "fsopen": 430, "fspick": 433, "get_kernel_syms": 177, "init_module": 175,
    "io_uring_enter": 426, "io_uring_register": 427, "io_uring_setup": 425,
    "ioperm": 173, "iopl": 172, "kcmp": 312, "kexec_file_load": 320,
    "kexec_load": 246, "keyctl": 250, "lookup_dcookie": 212, "mount": 165,
    "mount_setattr": 442, "move_mount": 429, "name_to_handle_at": 303,
    "nfsservctl": 180, "open_by_handle_at": 304, "open_tree": 428,
    "perf_event_open": 298, "pivot_root": 155, "process_vm_readv": 310,
    "process_vm_writev": 311, "query_module": 178, "quotactl": 179,
    "reboot": 169, "request_key": 249, "setns": 308, "settimeofday": 164,
    "swapoff": 168, "swapon": 167, "syslog": 103, "sysfs": 139,
    "_sysctl": 156, "umount2": 166, "unshare": 272, "uselib": 134,
    "userfaultfd": 323, "ustat": 136, "vhangup": 153,
}  # fmt: skip
_AARCH64 = {
    "acct": 89, "add_key": 217, "bpf": 280, "clock_adjtime": 266,
    "clock_settime": 112, "clone": 220, "clone3": 435, "delete_module": 106,
    "finit_module": 273, "fsconfig": 431, "fsmount": 432, "fsopen": 430,
    "fspick": 433, "init_module": 105, "io_uring_enter": 426,
    "io_uring_register": 427, "io_uring_setup": 425, "kcmp": 272,
    "kexec_file_load": 294, "kexec_load": 104, "keyctl": 219,
    "lookup_dcookie": 18, "mount": 40, "mount_setattr": 442, "move_mount": 429,
    "name_to_handle_at": 264, "nfsservctl": 42, "open_by_handle_at": 265,
    "open_tree": 428, "perf_event_open": 241, "pivot_root": 41,
    "process_vm_readv": 270, "process_vm_writev": 271, "quotactl": 60,
    "reboot": 142, "request_key": 218, "setns": 268, "settimeofday": 170,
    "swapoff": 225, "swapon": 224, "syslog": 116, "umount2": 39,
    "unshare": 97, "userfaultfd": 282, "vhangup": 58,
}  # fmt: skip

# AUDIT_ARCH_* values, and the first x32 call number on x86-64.
_ARCHES = {"x86_64": (0xC000003E, _X86_64), "aarch64": (0xC00000B7, _AARCH64)}
_X32_FIRST = 0x40000000

_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

# Classic BPF opcodes and seccomp return values (linux/filter.h, seccomp.h).
_LOAD_WORD = 0x20
_JUMP_EQUAL = 0x15
_JUMP_GREATER_EQUAL = 0x35
_JUMP_SET = 0x45
_RETURN = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_NR, _ARCH, _ARG0 = 0, 4, 16


def _op(code: int, k: int, true: int = 0, false: int = 0) -> bytes:
    return struct.pack("=HBBI", code, true, false, k)


@functools.lru_cache(maxsize=16)
def filter_program(capabilities: frozenset[int]) -> bytes:
    """Return the filter for a container holding ``capabilities``.

    The result is the packed ``sock_filter`` array for
    ``PR_SET_SECCOMP``; empty on a machine whose call numbers are not
    known here, where no filter is installed.
    """
    arch, numbers = _ARCHES.get(platform.machine(), (0, {}))
    if not numbers:
        return b""
    denied = sorted({numbers[n] for n in _denied(capabilities) if n in numbers})
    create_namespaces = NAMES.index("SYS_ADMIN") in capabilities
    eperm = _op(_RETURN, _ERRNO | errno.EPERM)

    program = [
        _op(_LOAD_WORD, _ARCH),
        _op(_JUMP_EQUAL, arch, 1, 0),
        _op(_RETURN, _KILL_PROCESS),
        _op(_LOAD_WORD, _NR),
    ]
    if numbers is _X86_64:
        program += [
            _op(_JUMP_GREATER_EQUAL, _X32_FIRST, 0, 1),
            _op(_RETURN, _KILL_PROCESS),
        ]
    for number in denied:
        program += [_op(_JUMP_EQUAL, number, 0, 1), eperm]
    if not create_namespaces:
        program += [
            _op(_JUMP_EQUAL, numbers["clone3"], 0, 1),
            _op(_RETURN, _ERRNO | errno.ENOSYS),
            _op(_JUMP_EQUAL, numbers["clone"], 0, 3),
            _op(_LOAD_WORD, _ARG0),
            _op(_JUMP_SET, _NAMESPACE_FLAGS, 0, 1),
            eperm,
        ]
    program.append(_op(_RETURN, _ALLOW))
    return b"".join(program)


def oci_profile(capabilities: frozenset[int]) -> dict[str, Any]:
    """Return the same filter as an OCI runtime spec ``linux.seccomp`` entry."""
    arch = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}
    calls: list[dict[str, Any]] = [
        {
            "names": sorted(_denied(capabilities)),
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": errno.EPERM,
        }
    ]
    if NAMES.index("SYS_ADMIN") not in capabilities:
        calls.append(
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}
        )
        # One rule per flag: a rule's conditions must all hold, rules are OR-ed.
        calls += [
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EPERM,
                "args": [
                    {
                        "index": 0,
                        "value": flag,
                        "valueTwo": flag,
                        "op": "SCMP_CMP_MASKED_EQ",
                    }
                ],
            }
            for flag in _flags(_NAMESPACE_FLAGS)
        ]
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [arch.get(platform.machine(), "SCMP_ARCH_NATIVE")],
        "syscalls": calls,
    }


def _denied(capabilities: frozenset[int]) -> set[str]:
    return {
        name
        for cap, names in _GATED.items()
        if cap is None or NAMES.index(cap) not in capabilities
        for name in names
    }


def _flags(mask: int) -> list[int]:
    return [1 << bit for bit in range(32) if mask & (1 << bit)]
