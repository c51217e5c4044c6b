"""Image verbs: images, tag, rmi, history, inspect, save, load, import, pull,
push, login, logout."""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING, Any

from layercake.cli._files import input_path, output_path
from layercake.cli._format import age, size, split_tag, table
from layercake.errors import ImageNotFound, LayercakeError

if TYPE_CHECKING:
    from layercake import Store

__all__ = ["register"]


def _store(args: argparse.Namespace) -> Store:
    import layercake

    return layercake.Store(args.store)


def _filters(items: list[str]) -> dict[str, Any]:
    filters: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise LayercakeError(f"invalid --filter {item!r}: expected KEY=VALUE")
        filters.setdefault(key, []).append(value)
    return {
        key: values[0] if key == "dangling" else values
        for key, values in filters.items()
    }


def _reference_pattern(text: str) -> re.Pattern[str]:
    parts = (re.escape(part) for part in text.split("*"))
    return re.compile("[^/]*".join(parts).replace("\\?", "[^/]"))


def images(args: argparse.Namespace) -> int:
    """List images, as a table, ids only, or JSON lines."""
    try:
        found = _store(args).images(_filters(args.filter))
    except ValueError as error:
        raise LayercakeError(f"images: {error}") from None
    patterns = [
        _reference_pattern(text) for text in _filters(args.filter).get("reference", [])
    ]
    rows = []
    for image in found:
        total = sum(layer.size for layer in image.layers)
        for name in image.tags or ("<none>:<none>",):
            # As docker does, show only the names the reference filter matched.
            if patterns and not any(
                p.fullmatch(name) or p.fullmatch(split_tag(name)[0]) for p in patterns
            ):
                continue
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


def tag(args: argparse.Namespace) -> int:
    """Give an image another name."""
    _store(args).image(args.source).tag(args.target)
    return 0


def rmi(args: argparse.Namespace) -> int:
    """Remove images (or just a tag of an image that has others)."""
    store = _store(args)
    for reference in args.images:
        for line in store.remove(reference, force=args.force):
            sys.stdout.write(line + "\n")
    return 0


def history(args: argparse.Namespace) -> int:
    """Show the instructions that made an image, newest first."""
    image = _store(args).image(args.image)
    sizes = iter(layer.size for layer in image.layers)
    rows = []
    records = []
    for entry in image.history:
        layer_size = 0 if entry.empty_layer else next(sizes, 0)
        records.append(
            {
                "CreatedAt": entry.created,
                "CreatedBy": entry.created_by or "",
                "Size": layer_size,
                "Comment": entry.comment or "",
                "EmptyLayer": entry.empty_layer,
            }
        )
        created_by = entry.created_by or ""
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        rows.append(
            (age(entry.created), created_by, size(layer_size), entry.comment or "")
        )
    if args.format == "json":
        for record in reversed(records):
            sys.stdout.write(json.dumps(record) + "\n")
        return 0
    table(("CREATED", "CREATED BY", "SIZE", "COMMENT"), list(reversed(rows)))
    return 0


def inspect(args: argparse.Namespace) -> int:
    """Print containers' or images' details as a JSON array, as docker does."""
    import layercake

    store = _store(args)
    results = []
    for name in args.names:
        if args.type in ("container", None):
            try:
                results.append(layercake.Container.load(store, name).inspect())
                continue
            except LayercakeError:
                if args.type == "container":
                    raise
        try:
            results.append(store.image(name).inspect())
        except ImageNotFound:
            raise LayercakeError(f"no such object: {name}") from None
    sys.stdout.write(json.dumps(results, indent=4) + "\n")
    return 0


def save(args: argparse.Namespace) -> int:
    """Write images to an archive (docker save)."""
    from layercake.cli._progress import transfer_renderer

    store = _store(args)
    # Progress goes to stderr: the archive itself may go to stdout.
    renderer = transfer_renderer(args.progress, sys.stderr)
    try:
        with output_path(args.output, store, "save") as path:
            store.save(args.images, path, format=args.format, on_progress=renderer)
    finally:
        renderer.close()
    return 0


def load(args: argparse.Namespace) -> int:
    """Read images from an archive, or from stdin without -i (docker load)."""
    store = _store(args)
    with input_path(args.input, store) as path:
        images = store.load(path)
    for image in images:
        for name in image.tags or (image.id,):
            prefix = "Loaded image" if image.tags else "Loaded image ID"
            sys.stdout.write(f"{prefix}: {name}\n")
    return 0


def import_(args: argparse.Namespace) -> int:
    """Make a one-layer image of a root file system tarball (docker import)."""
    changes: dict[str, Any] = {}
    for change in args.change:
        keyword, _, value = change.partition(" ")
        keyword = keyword.upper()
        if keyword in ("CMD", "ENTRYPOINT"):
            parsed = json.loads(value) if value.lstrip().startswith("[") else None
            words = parsed if isinstance(parsed, list) else ["/bin/sh", "-c", value]
            changes[keyword.lower()] = tuple(words)
        elif keyword == "ENV":
            changes["env"] = changes.get("env", ()) + (value.replace(" ", "=", 1),)
        elif keyword in ("WORKDIR", "USER"):
            changes["working_dir" if keyword == "WORKDIR" else "user"] = value
        else:
            raise LayercakeError(
                f"import --change {keyword}: only CMD, ENTRYPOINT, ENV, WORKDIR "
                "and USER are supported"
            )
    store = _store(args)
    with input_path(None if args.file == "-" else args.file, store) as path:
        image = store.import_rootfs(path, tag=args.reference, **changes)
    sys.stdout.write(image.id + "\n")
    return 0


def _finish(args: argparse.Namespace, event: str, digest: str) -> None:
    if args.progress == "json":
        record = {"event": event, "reference": args.reference, "digest": digest}
        sys.stdout.write(json.dumps(record) + "\n")
    else:
        sys.stdout.write(f"Digest: {digest}\n")


def _insecure(args: argparse.Namespace) -> bool | None:
    return None if args.tls_verify is None else args.tls_verify == "false"


def pull(args: argparse.Namespace) -> int:
    """Fetch an image from its registry, showing each layer's progress."""
    from layercake.cli._progress import transfer_renderer

    renderer = transfer_renderer(args.progress, sys.stdout)
    try:
        image = _store(args).pull(
            args.reference,
            on_progress=renderer,
            platform=args.platform,
            insecure=_insecure(args),
            ca_file=args.ca_file,
        )
    finally:
        renderer.close()
    _finish(args, "PullFinished", str(image.digest))
    return 0


def push(args: argparse.Namespace) -> int:
    """Send an image to its registry, showing each layer's progress."""
    from layercake.cli._progress import transfer_renderer

    store = _store(args)
    renderer = transfer_renderer(args.progress, sys.stdout)
    try:
        digest = store.image(args.reference).push(
            args.reference,
            on_progress=renderer,
            insecure=_insecure(args),
            ca_file=args.ca_file,
            compression=None if args.compression == "none" else "gzip",
        )
    finally:
        renderer.close()
    _finish(args, "PushFinished", str(digest))
    return 0


def login(args: argparse.Namespace) -> int:
    """Check credentials against a registry and remember them."""
    from layercake.store._registry import login as registry_login

    password = (
        sys.stdin.readline().rstrip("\n") if args.password_stdin else args.password
    )
    if not args.username or password is None:
        raise LayercakeError("login: give -u USER and -p PASSWORD or --password-stdin")
    registry_login(args.server, args.username, password)
    sys.stdout.write("Login Succeeded\n")
    return 0


def logout(args: argparse.Namespace) -> int:
    """Forget the credentials stored for a registry."""
    from layercake.store._registry import logout as registry_logout
    from layercake.store._registry import registry_domain

    domain = registry_domain(args.server)
    if registry_logout(args.server):
        sys.stdout.write(f"Removing login credentials for {domain}\n")
    else:
        sys.stdout.write(f"Not logged in to {domain}\n")
    return 0


def register(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], only: str | None = None
) -> None:
    """Add the image verbs, or only the verb ``only``."""
    if only in (None, "images"):
        parser = verbs.add_parser("images", help="list images")
        parser.add_argument("--format", choices=("table", "json"), default="table")
        parser.add_argument("-q", "--quiet", action="store_true", help="only image ids")
        parser.add_argument(
            "-f",
            "--filter",
            action="append",
            default=[],
            help="dangling=true|false, label=KEY[=VALUE], reference=PATTERN",
        )
        parser.set_defaults(handler=images)

    if only in (None, "tag"):
        parser = verbs.add_parser("tag", help="name an image")
        parser.add_argument("source")
        parser.add_argument("target")
        parser.set_defaults(handler=tag)

    if only in (None, "rmi"):
        parser = verbs.add_parser("rmi", help="remove images")
        parser.add_argument("images", nargs="+")
        parser.add_argument("-f", "--force", action="store_true")
        parser.set_defaults(handler=rmi)

    if only in (None, "history"):
        parser = verbs.add_parser("history", help="show an image's history")
        parser.add_argument("image")
        parser.add_argument("--no-trunc", action="store_true")
        parser.add_argument("--format", choices=("table", "json"), default="table")
        parser.set_defaults(handler=history)

    if only in (None, "inspect"):
        parser = verbs.add_parser("inspect", help="details of containers or images")
        parser.add_argument("names", nargs="+")
        parser.add_argument("--type", choices=("container", "image"))
        parser.set_defaults(handler=inspect)

    if only in (None, "save"):
        parser = verbs.add_parser("save", help="write images to an archive")
        parser.add_argument("images", nargs="+")
        parser.add_argument("-o", "--output", help="the archive (default: stdout)")
        parser.add_argument("--format", choices=("docker", "oci"), default="docker")
        parser.add_argument(
            "--progress", choices=("auto", "plain", "json"), default="auto"
        )
        parser.set_defaults(handler=save)

    if only in (None, "load"):
        parser = verbs.add_parser("load", help="read images from an archive")
        parser.add_argument("-i", "--input", help="the archive (default: stdin)")
        parser.set_defaults(handler=load)

    if only in (None, "import"):
        parser = verbs.add_parser("import", help="make an image of a rootfs tarball")
        parser.add_argument("file")
        parser.add_argument("reference", nargs="?")
        parser.add_argument("-c", "--change", action="append", default=[])
        parser.set_defaults(handler=import_)

    for name, handler, text in (
        ("pull", pull, "fetch an image from a registry"),
        ("push", push, "send an image to a registry"),
    ):
        if only not in (None, name):
            continue
        parser = verbs.add_parser(name, help=text)
        parser.add_argument("reference")
        parser.add_argument(
            "--progress",
            choices=("auto", "plain", "json"),
            default="auto",
            help="bars on a terminal, else lines (auto); lines; JSON lines",
        )
        parser.add_argument(
            "--tls-verify",
            choices=("true", "false"),
            help="false allows plain HTTP; default: plain HTTP for localhost only",
        )
        parser.add_argument("--ca-file", help="another certificate authority to trust")
        if name == "pull":
            parser.add_argument("--platform", help="os/arch[/variant] of an index")
        else:
            parser.add_argument(
                "--compression",
                choices=("gzip", "none"),
                default="gzip",
                help="compress layers that are stored uncompressed (default gzip)",
            )
        parser.set_defaults(handler=handler)

    if only in (None, "login"):
        parser = verbs.add_parser("login", help="remember credentials for a registry")
        parser.add_argument("server")
        parser.add_argument("-u", "--username")
        parser.add_argument("-p", "--password")
        parser.add_argument("--password-stdin", action="store_true")
        parser.set_defaults(handler=login)

    if only in (None, "logout"):
        parser = verbs.add_parser("logout", help="forget credentials for a registry")
        parser.add_argument("server", nargs="?", default="docker.io")
        parser.set_defaults(handler=logout)
