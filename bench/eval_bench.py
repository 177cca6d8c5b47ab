"""Benchmark of `fleetcompat evaluate` and its report on a large simulated fleet.

    .venv/bin/python bench/eval_bench.py            # the full set (a few minutes)
    .venv/bin/python bench/eval_bench.py --quick    # 1,000 hosts x 100 images

What it measures, each in a fresh subprocess so peak memory (ru_maxrss) is the
measurement's own:

1. evaluation of 10,000 hosts (drawn from 50 distinct machines, each host with its
   own name) x 1,000 images: wall time and peak RSS, cold (empty result cache) and
   warm (a second run over the unchanged fleet and mirror);
2. the same engine pair by pair (`validate(spec, host features)` for every host x
   image, specs parsed once and features loaded once per host, so only the rule
   engine is timed): a random sample of pairs is timed and the per-pair cost is
   multiplied by the number of pairs. This is an extrapolation, said as such;
3. growth: hosts 1,000 -> 10,000 at 1,000 images, images 100 -> 1,000 at 10,000
   hosts;
4. the report of the 10,000 x 1,000 run: time to write, HTML size, and time until
   the page is usable (its script has rendered the matrix) in headless Chromium.

Results print as a table and are written to bench/results/eval.json
(eval-quick.json with --quick).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from fleetcompat.evaluate import ImageTarget, evaluate_targets  # noqa: E402
from fleetcompat.features import Features  # noqa: E402
from fleetcompat.store import Host, Store  # noqa: E402

MACHINES = 50
KERNELS = [
    "4.18.0-553.el8_10.x86_64",
    "5.4.0-150-generic",
    "5.15.0-91-generic",
    "6.1.0-18-amd64",
    "6.8.0-45-generic",
]
OSES = [
    ("ubuntu", "20.04", "Ubuntu 20.04.6 LTS"),
    ("ubuntu", "22.04", "Ubuntu 22.04.4 LTS"),
    ("ubuntu", "24.04", "Ubuntu 24.04 LTS"),
    ("debian", "12", "Debian GNU/Linux 12 (bookworm)"),
    ("rhel", "8.10", "Red Hat Enterprise Linux 8.10 (Ootpa)"),
]
X86_FLAGS = [
    "ADX",
    "AESNI",
    "AVX",
    "AVX2",
    "BMI1",
    "BMI2",
    "CLMUL",
    "CMOV",
    "CX16",
    "ERMS",
    "F16C",
    "FMA3",
    "FXSR",
    "HTT",
    "LZCNT",
    "MMX",
    "MOVBE",
    "NX",
    "OSXSAVE",
    "POPCNT",
    "RDRAND",
    "RDSEED",
    "RDTSCP",
    "SHA",
    "SSE",
    "SSE2",
    "SSE3",
    "SSE4",
    "SSE42",
    "SSSE3",
    "SYSCALL",
    "SYSEE",
    "VMX",
    "X87",
    "XSAVE",
    "XSAVEC",
    "XSAVEOPT",
    "XSAVES",
    "X86_64_V1",
    "X86_64_V2",
    "X86_64_V3",
]
AVX512 = [
    "AVX512F",
    "AVX512BW",
    "AVX512CD",
    "AVX512DQ",
    "AVX512VL",
    "AVX512VNNI",
    "X86_64_V4",
]
ARM_FLAGS = [
    "FP",
    "ASIMD",
    "EVTSTRM",
    "AES",
    "PMULL",
    "SHA1",
    "SHA2",
    "CRC32",
    "ATOMICS",
    "FPHP",
    "ASIMDHP",
]
MODULES = [
    "ext4",
    "xfs",
    "overlay",
    "br_netfilter",
    "nf_conntrack",
    "ip_tables",
    "x_tables",
    "bridge",
    "stp",
    "llc",
    "dm_mod",
    "kvm",
    "kvm_intel",
    "irqbypass",
    "crc32_pclmul",
    "ghash_clmulni_intel",
    "sha256_ssse3",
    "tls",
    "nvme",
    "nvme_core",
    "ahci",
    "libahci",
    "i40e",
    "ixgbe",
    "mlx5_core",
    "mlx5_ib",
    "ib_core",
]


def machine(i: int) -> Features:
    """The features of machine model `i`: one of 50 distinct, realistic-ish sets."""
    rng = random.Random(i)
    arm = i >= 40
    kernel = KERNELS[i % len(KERNELS)]
    if arm:
        kernel = kernel.replace("x86_64", "aarch64").replace("amd64", "arm64")
    os_id, version, pretty = OSES[(i // 5) % len(OSES)]
    flags = set(ARM_FLAGS if arm else X86_FLAGS)
    if not arm and i % 3 == 0:
        flags |= set(AVX512)
    modules = set(rng.sample(MODULES, 18))
    gpu = i % 5 == 1
    if gpu and i % 10 != 1:
        modules |= {"nvidia", "nvidia_uvm", "nvidia_modeset"}
    if i % 4 == 0:
        modules.add("vfio_pci")
    devices = [
        {"class": "0600", "vendor": "8086", "device": f"{0x1900 + k:04x}"}
        for k in range(8 + i % 7)
    ]
    devices += [{"class": "0108", "vendor": "144d", "device": "a808"}] * (1 + i % 4)
    nic = {"class": "0200", "vendor": "8086" if i % 2 else "15b3", "device": "1572"}
    if i % 3 != 2:
        nic["sriov_totalvfs"] = "64"
    devices.append(nic)
    if gpu:
        devices.append({"class": "0302", "vendor": "10de", "device": "2330"})
    for d in devices:
        d.setdefault("subsystem_vendor", d["vendor"])
        d.setdefault("subsystem_device", "0000")
    major, minor = kernel.split(".")[:2]
    return Features(
        flags={"cpu.cpuid": flags, "kernel.loadedmodule": modules},
        attributes={
            "cpu.model": {
                "vendor_id": "ARM" if arm else ("Intel" if i % 2 else "AMD"),
                "family": "6" if i % 2 else "25",
                "id": str(40 + i),
                "hypervisor": "none",
            },
            "kernel.version": {
                "full": kernel,
                "major": major,
                "minor": minor,
                "revision": "0",
            },
            "memory.hugepages": {
                "enabled": "true" if i % 5 == 0 else "false",
                "hugepages-2Mi": "1024" if i % 5 == 0 else "0",
            },
            "memory.numa": {"is_numa": str(i % 2 == 0).lower(), "node_count": "2"},
            "system.osrelease": {
                "ID": os_id,
                "VERSION_ID": version,
                "VERSION_ID.major": version.split(".")[0],
                "PRETTY_NAME": pretty,
            },
        },
        instances={"pci.device": devices},
    )


def spec_text(j: int) -> str:
    """The compatibility spec of image `j`: one of several realistic shapes."""
    kind = j % 8
    name = f"image-{j:04d}"
    head = f"version: v1alpha1\ncompatibilities:\n- description: needs of {name}\n"
    if kind == 0:
        minor = 4 + j % 12
        return head + (
            "  rules:\n  - name: kernel\n    matchAny:\n"
            "    - matchFeatures:\n      - feature: kernel.version\n"
            '        matchExpressions: {major: {op: Gt, value: ["5"]}}\n'
            "    - matchFeatures:\n      - feature: kernel.version\n"
            '        matchExpressions: {major: {op: In, value: ["5"]}, '
            f'minor: {{op: Ge, value: ["{minor}"]}}}}\n'
        )
    if kind == 1:
        return head + (
            "  tag: gpu\n  rules:\n  - name: gpu\n    matchFeatures:\n"
            "    - feature: pci.device\n      matchExpressions:\n"
            '        vendor: {op: In, value: ["10de"]}\n'
            '        class: {op: In, value: ["0300", "0302"]}\n'
            "    - feature: kernel.loadedmodule\n      matchExpressions:\n"
            "        nvidia: {op: Exists}\n        nvidia_uvm: {op: Exists}\n"
        )
    if kind == 2:
        return head + (
            "  rules:\n  - name: dpdk\n    matchFeatures:\n"
            "    - feature: kernel.loadedmodule\n"
            "      matchExpressions: {vfio_pci: {op: Exists}}\n"
            "    - feature: memory.hugepages\n"
            "      matchExpressions: {enabled: {op: IsTrue}}\n"
            "    - feature: pci.device\n      matchExpressions:\n"
            '        class: {op: In, value: ["0200"]}\n'
            "        sriov_totalvfs: {op: Exists}\n"
        )
    if kind == 3:
        return head + (
            "  rules:\n  - name: avx512\n    matchFeatures:\n"
            "    - feature: cpu.cpuid\n      matchExpressions:\n"
            "        AVX512F: {op: Exists}\n        AVX512VNNI: {op: Exists}\n"
        )
    if kind == 4:
        versions = ["20.04", "22.04", "24.04", "12"][: 1 + j % 4]
        return head + (
            "  rules:\n  - name: os\n    matchFeatures:\n"
            "    - feature: system.osrelease\n      matchExpressions:\n"
            '        ID: {op: In, value: ["ubuntu", "debian"]}\n'
            f"        VERSION_ID: {{op: In, value: {json.dumps(versions)}}}\n"
        )
    if kind == 5:
        return (
            "version: v1alpha1\ncompatibilities:\n"
            f"- tag: preferred\n  weight: 10\n  description: {name} fast path\n"
            "  rules:\n  - name: avx2-and-numa\n    matchFeatures:\n"
            "    - feature: cpu.cpuid\n      matchExpressions: {AVX2: {op: Exists}}\n"
            "    - feature: memory.numa\n"
            "      matchExpressions: {is_numa: {op: IsTrue}}\n"
            f"- tag: fallback\n  weight: 1\n  description: {name} minimum\n"
            "  rules:\n  - name: kernel\n    matchFeatures:\n"
            "    - feature: kernel.version\n"
            f'      matchExpressions: {{major: {{op: Ge, value: ["{4 + j % 3}"]}}}}\n'
        )
    if kind == 6:
        return head + (
            "  rules:\n  - name: nic\n    matchAny:\n"
            "    - matchFeatures:\n      - feature: pci.device\n"
            '        matchExpressions: {vendor: {op: In, value: ["8086"]}, '
            'class: {op: In, value: ["0200"]}}\n'
            "    - matchFeatures:\n      - feature: pci.device\n"
            '        matchExpressions: {vendor: {op: In, value: ["15b3"]}, '
            'class: {op: In, value: ["0200"]}}\n'
            "  - name: no-old-kernel\n    matchFeatures:\n"
            "    - feature: kernel.version\n"
            "      matchExpressions: "
            f'{{full: {{op: NotIn, value: ["{KERNELS[j % 5]}"]}}}}\n'
        )
    return head + (
        "  rules:\n  - name: kernel-version\n    matchFeatures:\n"
        "    - feature: kernel.version\n"
        f'      matchExpressions: {{full: {{op: Ge, value: ["5.{j % 16}"], '
        "type: version}}\n"
    )


def targets(images: int) -> list[ImageTarget]:
    """Image targets: every third image has separate amd64 and arm64 artifacts."""
    import hashlib

    found = []
    for j in range(images):
        name = f"registry.example/app-{j:04d}:1.{j % 7}"
        text = spec_text(j).encode()
        if j % 3 == 0:
            for arch in ("amd64", "arm64"):
                body = text + f"# {arch}\n".encode()
                digest = "sha256:" + hashlib.sha256(body).hexdigest()
                found.append(ImageTarget(name, f"linux/{arch}", digest, body))
        else:
            digest = "sha256:" + hashlib.sha256(text).hexdigest()
            found.append(ImageTarget(name, "", digest, text))
    return found


def build_fleet(db: Path, hosts: int) -> None:
    """A store with `hosts` hosts drawn from the 50 machines, each its own name."""
    store = Store(db)
    store.db.conn.execute("PRAGMA synchronous=OFF")
    run = store.start_run("collect")
    models = [machine(i) for i in range(MACHINES)]
    for n in range(hosts):
        name = f"node-{n:05d}.dc{n % 4}.example"
        groups = (f"dc{n % 4}", "gpu" if n % MACHINES % 5 == 1 else "general")
        store.save_snapshot(
            Host(name, groups=groups),
            run_id=run,
            source="bench",
            features=models[n % MACHINES],
            node_name=name,
        )
    store.finish_run(run, "ok", {"hosts": hosts})
    store.close()


# Measurements (each runs in its own subprocess: `eval_bench.py --child KIND ...`)


def child(kind: str, db: str, images: int, extra: str) -> dict[str, Any]:
    """One measurement in this process; returns its figures."""
    store = Store(db)
    if kind == "evaluate":
        started = time.perf_counter()
        result = evaluate_targets(store, targets(images))
        wall = time.perf_counter() - started
        figures = {"wall_s": wall, **result.to_json()}
    elif kind == "pairwise":
        figures = _pairwise(store, images, int(extra))
    elif kind == "report":
        from fleetcompat.report import write_report

        started = time.perf_counter()
        files = write_report(store, None, Path(extra))
        figures = {
            "wall_s": time.perf_counter() - started,
            "html_bytes": files.html.stat().st_size,
            "matrix_csv_bytes": files.matrix_csv.stat().st_size,
            "long_csv_bytes": files.long_csv.stat().st_size,
        }
    else:
        raise SystemExit(f"unknown measurement {kind}")
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def _pairwise(store: Store, images: int, sample: int) -> dict[str, Any]:
    """Time validate() on host x image pairs one by one: a sample, or all (0)."""
    from fleetcompat.errors import RuleError
    from fleetcompat.evaluate import choose_target, host_architecture
    from fleetcompat.spec import load_spec
    from fleetcompat.validate import validate

    rng = random.Random(7)
    snapshots = store.latest_good_snapshots()
    all_targets = targets(images)
    by_image: dict[str, list[ImageTarget]] = {}
    for target in all_targets:
        by_image.setdefault(target.image, []).append(target)
    names = sorted(by_image)
    specs = {t.artifact: load_spec(t.spec.decode()) for t in all_targets if t.spec}

    if not sample:
        return _every_pair(store, snapshots, by_image, specs)
    pairs = [(rng.choice(snapshots), rng.choice(names)) for _ in range(sample)]
    prepared = []
    for snapshot, image in pairs:
        features = store.features(snapshot)
        target = choose_target(host_architecture(features), by_image[image])
        if target is not None and target.artifact:
            prepared.append((specs[target.artifact], features))

    started = time.perf_counter()
    for spec, features in prepared:
        with contextlib.suppress(RuleError):
            validate(spec, features)
    elapsed = time.perf_counter() - started
    per_pair = elapsed / max(len(prepared), 1)
    total_pairs = len(snapshots) * len(names)
    return {
        "sample_pairs": len(prepared),
        "sample_s": elapsed,
        "per_pair_us": per_pair * 1e6,
        "pairs": total_pairs,
        "extrapolated_s": per_pair * total_pairs,
    }


def _every_pair(
    store: Store,
    snapshots: list[Any],
    by_image: dict[str, list[ImageTarget]],
    specs: dict[str, Any],
) -> dict[str, Any]:
    """Time validate() on every host x image pair, one by one (hosts loaded once)."""
    from fleetcompat.errors import RuleError
    from fleetcompat.evaluate import choose_target, host_architecture
    from fleetcompat.validate import validate

    started = time.perf_counter()
    evaluated = 0
    for snapshot in snapshots:
        features = store.features(snapshot)
        arch = host_architecture(features)
        for targets_of_image in by_image.values():
            target = choose_target(arch, targets_of_image)
            if target is None or not target.artifact:
                continue
            with contextlib.suppress(RuleError):
                validate(specs[target.artifact], features)
            evaluated += 1
    elapsed = time.perf_counter() - started
    pairs = len(snapshots) * len(by_image)
    return {
        "sample_pairs": evaluated,
        "sample_s": elapsed,
        "per_pair_us": elapsed / max(evaluated, 1) * 1e6,
        "pairs": pairs,
        "extrapolated_s": elapsed,
    }


def measure(kind: str, db: Path, images: int, extra: str = "") -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and read its figures."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(db), str(images), extra],
        check=True,
        capture_output=True,
        text=True,
    )
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def first_view_seconds(html: Path) -> float:
    """Seconds from navigation until the report's script marks the page ready."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = context.new_page()
        started = time.perf_counter()
        page.goto(html.as_uri())
        page.wait_for_selector("body[data-ready=true]", timeout=60_000)
        seconds = time.perf_counter() - started
        context.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sample",
        type=int,
        default=0,
        help="time this many random pairs one by one instead of every pair",
    )
    parser.add_argument("--child", nargs=4, metavar=("KIND", "DB", "IMAGES", "X"))
    args = parser.parse_args()
    if args.child:
        kind, db, images, extra = args.child
        print(json.dumps(child(kind, db, int(images), extra)))
        return

    host_steps = [1000] if args.quick else [1000, 2500, 5000, 10000]
    image_steps = [100] if args.quick else [100, 250, 500, 1000]
    top_hosts, top_images = host_steps[-1], image_steps[-1]
    results: dict[str, Any] = {"hosts": top_hosts, "images": top_images}

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fleets = {}
        for hosts in host_steps:
            fleets[hosts] = work / f"fleet-{hosts}.db"
            build_fleet(fleets[hosts], hosts)

        main_db = fleets[top_hosts]
        results["cold"] = measure("evaluate", main_db, top_images)
        results["warm"] = measure("evaluate", main_db, top_images)
        # Every pair, one by one (about six minutes at full size); `--sample N`
        # times N random pairs instead and multiplies up, which it then says.
        results["pairwise"] = measure("pairwise", main_db, top_images, str(args.sample))
        results["speedup"] = (
            results["pairwise"]["extrapolated_s"] / results["cold"]["wall_s"]
        )
        report_dir = work / "report"
        results["report"] = measure("report", main_db, top_images, str(report_dir))
        try:
            results["report"]["first_view_s"] = first_view_seconds(
                report_dir / "report.html"
            )
        except Exception as exc:  # the browser is optional for the figures above
            results["report"]["first_view_s"] = f"not measured: {exc}"

        results["growth_hosts"] = {}
        for hosts in host_steps:
            fresh = work / f"growth-{hosts}.db"
            fresh.write_bytes(fleets[hosts].read_bytes())
            _strip_results(fresh)
            results["growth_hosts"][hosts] = measure("evaluate", fresh, top_images)
        results["growth_images"] = {}
        for images in image_steps:
            fresh = work / f"growth-i{images}.db"
            fresh.write_bytes(main_db.read_bytes())
            _strip_results(fresh)
            results["growth_images"][images] = measure("evaluate", fresh, images)

    _print(results)
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    name = "eval-quick.json" if args.quick else "eval.json"
    (out / name).write_text(json.dumps(results, indent=2, default=str))


def _strip_results(db: Path) -> None:
    """Empty the result cache of a copied database, so the run is cold."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM eval_results")
    conn.commit()
    conn.close()


def _print(results: dict[str, Any]) -> None:
    cold, warm, pair = results["cold"], results["warm"], results["pairwise"]
    rep = results["report"]
    print(f"fleet: {results['hosts']} hosts (50 machines) x {results['images']} images")
    print(
        f"evaluate cold: {cold['wall_s']:.2f} s, peak {cold['peak_rss_mb']:.0f} MB, "
        f"{cold['evaluations']} distinct evaluations, cells {cold['cells']}"
    )
    print(f"evaluate warm: {warm['wall_s']:.2f} s, peak {warm['peak_rss_mb']:.0f} MB")
    print(
        f"pair by pair: {pair['per_pair_us']:.0f} us/pair, "
        f"{pair['sample_pairs']} pairs evaluated; {pair['pairs']} pairs take "
        f"{pair['extrapolated_s']:.0f} s"
        + (
            " (measured)"
            if pair["sample_pairs"] >= pair["pairs"] * 0.9
            else " (multiplied up from the sample)"
        )
        + f"; speedup {results['speedup']:.0f}x"
    )
    print(
        f"report: {rep['wall_s']:.2f} s, HTML {rep['html_bytes'] / 1e6:.2f} MB, "
        f"matrix.csv {rep['matrix_csv_bytes'] / 1e6:.1f} MB, results_long.csv "
        f"{rep['long_csv_bytes'] / 1e6:.1f} MB, peak {rep['peak_rss_mb']:.0f} MB, "
        f"first view in Chromium {rep['first_view_s']}"
    )
    for label, key in (("hosts", "growth_hosts"), ("images", "growth_images")):
        steps = ", ".join(f"{n}: {r['wall_s']:.2f} s" for n, r in results[key].items())
        print(f"growth over {label} (cold): {steps}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
