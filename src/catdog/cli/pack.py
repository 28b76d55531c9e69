"""`catdog pack` and `catdog inspect`: parse options, call catdog.data.pack, print the manifest as tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from catdog.cli import app, fail, handle_errors
from catdog.imageformats import DEFAULT_MAX_PIXELS


def _splits_table(manifest: dict):
    from rich.table import Table

    classes = manifest["classes"]
    table = Table(title="splits")
    for col in ("split", "images", *classes, "shards", "MB"):
        table.add_column(col, justify="left" if col == "split" else "right")
    for split, info in manifest["splits"].items():
        counts = [str(info["class_counts"].get(c, "-")) for c in classes]
        table.add_row(split, f"{info['num_examples']:,}", *counts, str(len(info["shards"])),
                      f"{info['num_bytes'] / 2**20:,.1f}")
    return table


def _print_warnings(manifest: dict) -> None:
    for line in manifest.get("warnings", []):
        typer.secho(f"warning: {line}", fg=typer.colors.YELLOW, err=True)


def _issues_lines(manifest: dict) -> list[str]:
    rejected = manifest.get("rejected", {})
    reasons = ", ".join(f"{r}: {n}" for r, n in rejected.get("by_reason", {}).items())
    converted = manifest.get("converted", {})
    formats = ", ".join(f"{f}: {n}" for f, n in converted.get("by_format", {}).items())
    dup = manifest.get("duplicates", {})
    return [
        f"rejected   {rejected.get('count', 0)}" + (f" ({reasons}) -> {rejected.get('file')}" if reasons else ""),
        f"converted  {converted.get('count', 0)}" + (f" to JPEG ({formats})" if formats else ""),
        f"duplicates {dup.get('exact', 0)} exact (kept once), {dup.get('label_conflicts', 0)} with conflicting "
        f"labels, {dup.get('near', 0)} near, {dup.get('unlabeled_copies', 0)} byte-identical test files kept "
        f"(one record per test file) -> {dup.get('file')}",
        f"orientation {manifest.get('orientation', {}).get('turned', 0)} photos with an EXIF orientation "
        "(applied when decoding)",
        f"leakage    {manifest.get('leakage', {}).get('count', 0)} test images also in train/val -> "
        f"{manifest.get('leakage', {}).get('file')}",
    ]


@app.command("pack")
@handle_errors
def pack_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder for shards + manifest.json.")],
    sources: Annotated[list[Path] | None, typer.Argument(help="Folders or .zip files: Kaggle flat (cat.1.jpg), class "
                                                              "sub-folders (SRC/cat/*.jpg), numbered (test1/1.jpg) or "
                                                              "split folders (SRC/train/<class>/, SRC/val/<class>/, SRC/test/).")] = None,
    val_fraction: Annotated[float, typer.Option(help="Share of labeled images for validation (by content hash); "
                                                "not used for a source with a val/ folder.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Salts the split and the record order.")] = 0,
    shard_size: Annotated[str, typer.Option(help="Approximate shard size: bytes or 64MB, 128MB, 1GB.")] = "128MB",
    workers: Annotated[int | None, typer.Option(help="Processes that check images (default: all cores; 1 = no subprocesses).")] = None,
    max_pixels: Annotated[int, typer.Option(help="Reject images whose header claims more pixels.")] = DEFAULT_MAX_PIXELS,
    overwrite: Annotated[bool, typer.Option(help="Replace a different pack already in --out.")] = False,
    num_workers: Annotated[int, typer.Option(help="Machines sharing this pack (each runs it with its own --worker-index).")] = 1,
    worker_index: Annotated[int, typer.Option(help="This machine's share, 0..num-workers-1 (writes --out/part-I-of-N).")] = 0,
    merge: Annotated[bool, typer.Option("--merge", help="Write one manifest over the parts in --out (no SRC).")] = False,
) -> None:
    """Check, deduplicate and split images, and write them as TFRecord shards + manifest.json."""
    from rich.console import Console

    from catdog.data.pack import pack
    from catdog.sizes import parse_size

    if merge:
        from catdog.data.merge import merge as merge_parts

        if sources:
            fail("--merge takes no SRC: it merges the part-*-of-N folders already in --out")
        manifest = merge_parts(str(out), overwrite=overwrite)
    elif not sources:
        fail("name at least one SRC folder or .zip to pack (or use --merge)")
    else:
        manifest = pack([str(s) for s in sources], str(out), val_fraction=val_fraction, seed=seed,
                        shard_size=parse_size(shard_size, "--shard-size"), workers=workers, max_pixels=max_pixels,
                        overwrite=overwrite, num_workers=num_workers, worker_index=worker_index)
    if "part" in manifest:
        out = Path(out) / f"part-{worker_index:05d}-of-{num_workers:05d}"
    console = Console()
    _print_warnings(manifest)
    console.print(_splits_table(manifest))
    for line in _issues_lines(manifest):
        console.print(line, highlight=False)
    stats = manifest.get("stats", {})
    shard_bytes = sum(s["num_bytes"] for s in manifest["splits"].values())
    ratio = shard_bytes / stats["source_bytes"] if stats.get("source_bytes") else float("nan")
    console.print(f"bytes      {shard_bytes / 2**20:,.1f} MB in shards, {ratio:.3f}x the source files", highlight=False)
    console.print(f"speed      {stats.get('images_per_second', 0):,.0f} images/s ({stats.get('seconds', 0)} s)", highlight=False)
    train_shards = len(manifest["splits"].get("train", {}).get("shards", []))
    if 0 < train_shards < max(2, num_workers):  # tf.data shards training data by FILE across training workers
        console.print(f"warning    train has {train_shards} shard(s): multi-worker training needs at least one shard "
                      "per worker (several is better); re-pack with a smaller --shard-size to train on more "
                      "machines", highlight=False)
    console.print(f"packed into {out}", highlight=False)


@app.command("inspect")
@handle_errors
def inspect_command(
    directory: Annotated[Path, typer.Argument(help="A folder written by `catdog pack`.")],
    verify: Annotated[bool, typer.Option("--verify/--no-verify", help="Re-hash every shard.")] = True,
) -> None:
    """Print a pack's manifest as tables and verify shard checksums (exit 1 if any shard is broken)."""
    from rich.console import Console
    from rich.table import Table

    from catdog.data.pack import inspect

    manifest, problems = inspect(str(directory), verify=verify)
    console = Console()
    overview = Table(title=str(directory), show_header=False)
    for key in ("format", "catdog_version", "tensorflow_version", "created", "fingerprint"):
        overview.add_row(key, str(manifest.get(key, "")))
    overview.add_row("classes", ", ".join(manifest["classes"]) or "(none: unlabeled only)")
    for key, value in manifest.get("config", {}).items():
        overview.add_row(key, str(value))
    for source in manifest.get("sources", []):
        overview.add_row("source", f"{source['path']} ({source['layout']}, {source['num_files']} files)")
    console.print(overview)
    console.print(_splits_table(manifest))
    shards = Table(title="shards")
    for col in ("file", "images", "MB", "sha256"):
        shards.add_column(col, justify="right" if col in ("images", "MB") else "left")
    for info in manifest["splits"].values():
        for shard in info["shards"]:
            shards.add_row(shard["file"], f"{shard['num_examples']:,}", f"{shard['num_bytes'] / 2**20:,.1f}",
                           shard["sha256"][:16])
    console.print(shards)
    _print_warnings(manifest)
    for line in _issues_lines(manifest):
        console.print(line, highlight=False)
    if problems:
        for line in problems[:-1]:
            typer.secho(f"error: {line}", fg=typer.colors.RED, err=True)
        fail(problems[-1])
    console.print("checksums  all shards intact" if verify else "checksums  not verified (--no-verify)", highlight=False)
