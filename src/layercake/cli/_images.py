"""Image verbs: ``images``."""

from __future__ import annotations

import argparse
import json
import sys

from layercake.cli._format import age, size, split_tag, table

__all__ = ["register"]


def images(args: argparse.Namespace) -> int:
    """List tagged images, as a table or JSON lines."""
    import layercake

    rows = []
    for image in layercake.Store(args.store).images():
        total = sum(layer.size for layer in image.layers)
        for name in image.tags:
            repository, tag = split_tag(name)
            rows.append(
                {
                    "Repository": repository,
                    "Tag": tag,
                    "ID": image.short_id,
                    "Digest": str(image.digest),
                    "CreatedAt": image.config.created,
                    "Size": total,
                }
            )
    if args.quiet:
        for image_id in dict.fromkeys(str(row["ID"]) for row in rows):
            sys.stdout.write(image_id + "\n")
    elif args.format == "json":
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
    else:
        table(
            ("REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"),
            [
                (
                    str(row["Repository"]),
                    str(row["Tag"]),
                    str(row["ID"]),
                    age(row["CreatedAt"]),  # type: ignore[arg-type]
                    size(row["Size"]),  # type: ignore[arg-type]
                )
                for row in rows
            ],
        )
    return 0


def register(verbs: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the image verbs."""
    parser = verbs.add_parser("images", help="list images")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.add_argument("-q", "--quiet", action="store_true", help="only image ids")
    parser.set_defaults(handler=images)
