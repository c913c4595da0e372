"""Fault campaign (issue 13 item 4): a slow suite run on demand, not in CI.

    .venv/bin/python -m bench.faults <campaign> [--quick]
    .venv/bin/python -m bench.faults --list

Each campaign lives in its own module `bench/fault_<name>.py` exposing
`run(quick: bool) -> int` (0 = every check held); it prints its figures in a
form that can be pasted into a note, headed by the machine it ran on. A campaign
with options of its own takes them as `run(quick, argv)` (e.g. `kill --kills 40`).
Register a campaign by adding one line to CAMPAIGNS below.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import platform
import sys
import time
from collections.abc import Callable

# campaign name → "module:function"; modules are imported only when their campaign runs,
# so one campaign's missing dependency never stops another.
CAMPAIGNS: dict[str, str] = {
    "kill": "bench.fault_kill:run",
    "outage": "bench.fault_outage:run",
    "disk": "bench.fault_disk:run",
    "clock": "bench.fault_clock:run",
    "fuzz-frames": "bench.fault_fuzz:run",
    "fuzz-mqtt": "bench.fault_mqtt:run",
    "api": "bench.fault_api:run",
}


def machine() -> str:
    """One line: the machine the figures come from (cores, load average, python, kernel)."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"machine: {os.cpu_count()} cores, load average {load}, "
        f"python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def resolve(name: str) -> Callable[..., int]:
    module_name, _, function = CAMPAIGNS[name].partition(":")
    return getattr(importlib.import_module(module_name), function)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("campaign", nargs="?", choices=sorted(CAMPAIGNS), help="which fault to inject")
    parser.add_argument("--quick", action="store_true", help="a short run (fewer kills, smaller volumes)")
    parser.add_argument("--list", action="store_true", help="list the campaigns and exit")
    args, extra = parser.parse_known_args(argv)
    if args.list or args.campaign is None:
        print("\n".join(sorted(CAMPAIGNS)))
        return 0 if args.list else 2
    campaign = resolve(args.campaign)
    takes_options = len(inspect.signature(campaign).parameters) > 1
    if extra and not takes_options:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    print(f"== fault campaign: {args.campaign}{' (--quick)' if args.quick else ''}")
    print(f"command: .venv/bin/python -m bench.faults {' '.join(argv if argv is not None else sys.argv[1:])}")
    print(machine())
    started = time.monotonic()
    status = campaign(args.quick, extra) if takes_options else campaign(args.quick)
    print(f"campaign {args.campaign}: {'PASS' if status == 0 else 'FAIL'} in {time.monotonic() - started:.0f} s")
    print(machine())
    return status


if __name__ == "__main__":
    sys.exit(main())
