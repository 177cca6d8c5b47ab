"""The small languages inside an inventory: host patterns and ssh arguments.

Host patterns are Ansible's (`web[01:20].example.com`, `node-[a:f]`, a step as in
`[1:9:2]`, a port after the name); ssh arguments are those of
`ansible_ssh_common_args` / `ansible_ssh_extra_args`, of which the options that
decide where and as whom to connect are kept.
"""

from __future__ import annotations

import re
import shlex
import string
from pathlib import Path
from typing import Any

_RANGE = re.compile(r"\[([0-9a-zA-Z]+):([0-9a-zA-Z]+)(?::(\d+))?\]")


def ssh_args(args: str) -> tuple[dict[str, str], str]:
    """The options we honour from `ssh` command-line arguments, and a skip reason.

    Options are `jump`, `port`, `user` and `key`; the skip reason says why a
    ProxyCommand cannot be followed. Raises ValueError for unbalanced quotes.
    """
    words = shlex.split(args)

    found: dict[str, str] = {}
    skip = ""
    flags = {"-J": "jump", "-p": "port", "-l": "user", "-i": "key"}
    named = {"proxyjump": "jump", "port": "port", "user": "user", "identityfile": "key"}
    i = 0
    while i < len(words):
        word = words[i]
        flag, attached = word[:2], word[2:]
        if flag in flags or flag == "-o":
            if attached:
                argument = attached
            elif i + 1 < len(words):
                i += 1
                argument = words[i]
            else:
                break
            if flag != "-o":
                found.setdefault(flags[flag], argument)
            else:
                key, _, val = argument.partition("=")
                if not val and " " in key:
                    key, _, val = key.partition(" ")
                key = key.strip().lower()
                if key in named:
                    found.setdefault(named[key], val.strip())
                elif key == "proxycommand":
                    bastion = proxy_command_bastion(val)
                    if bastion:
                        found.setdefault("jump", bastion)
                    else:
                        skip = (
                            f"ProxyCommand {val!r} is not supported; "
                            "use ProxyJump or fleetcompat_jump"
                        )
        i += 1
    return found, skip


def proxy_command_bastion(command: str) -> str | None:
    """The bastion of `ssh [-p P] [-l U] [-q] -W %h:%p [user@]bastion`, else None."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if not words or Path(words[0]).name != "ssh" or "-W" not in words:
        return None
    user = port = None
    rest = []
    i = 1
    while i < len(words):
        word = words[i]
        if word in ("-W", "-p", "-l", "-o", "-i", "-F") and i + 1 < len(words):
            if word == "-p":
                port = words[i + 1]
            elif word == "-l":
                user = words[i + 1]
            elif word == "-W" and words[i + 1] != "%h:%p":
                return None
            i += 2
            continue
        if not word.startswith("-"):
            rest.append(word)
        i += 1
    if len(rest) != 1:
        return None
    destination = rest[0]
    if user and "@" not in destination:
        destination = f"{user}@{destination}"
    return f"{destination}:{port}" if port else destination


def expand_hosts(pattern: str, error: Any) -> list[tuple[str, int | None]]:
    """Host names from a pattern with `[a:b]` / `[a:b:step]` ranges and `:port`.

    `error` makes the exception raised for a bad or oversized range from a message.
    """
    port = None
    host_part = pattern
    if pattern.count(":") == 1 or (":" in pattern and "]" in pattern.rsplit(":", 1)[0]):
        head, _, tail = pattern.rpartition(":")
        if tail.isdigit() and not head.endswith("["):
            host_part, port = head, int(tail)
    match = _RANGE.search(host_part)
    if not match:
        return [(host_part, port)]

    start, end, step = match.group(1), match.group(2), int(match.group(3) or 1)
    if start.isdigit() and end.isdigit():
        width = len(start) if start.startswith("0") else 0
        values = [str(n).zfill(width) for n in range(int(start), int(end) + 1, step)]
    elif len(start) == 1 and len(end) == 1 and start.isalpha() and end.isalpha():
        letters = string.ascii_letters
        values = list(letters[letters.index(start) : letters.index(end) + 1 : step])
    else:
        raise error(f"bad host range {match.group(0)!r}")
    if not values or len(values) > 100_000:
        raise error(f"host range {match.group(0)!r} is empty or too large")

    found = []
    for value in values:
        name = host_part[: match.start()] + value + host_part[match.end() :]
        found.extend(expand_hosts(name if port is None else f"{name}:{port}", error))
    return found
