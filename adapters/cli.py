"""The ``civicvault`` command line: thin commands over the services."""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from adapters.progress import Progress
from adapters.settings import DEFAULT_DATA_DIR, Settings
from adapters.wiring import Services, next_key_file, open_services, previous_key_file
from keys.errors import BadMasterKey, KeyLayerError
from keys.files import fsync_dir
from keys.master import MasterKey, write_key_file
from keys.resident_keys import rotate_master
from keys.tokens import AT_A_UNIT, ROLES, SUBJECT_RULE, is_subject, issue_token
from projections.evidence import BundleError, NothingToExport, export_bundle, verify_bundle
from projections.ledger import Checkpoint
from projections.ledger import verify as verify_ledger
from projections.runner import RebuildRunning
from vault.errors import InvalidCatalogue, InvalidInput, InvalidPolicy, VaultError
from vault.ids import check_resident_id
from vault.inputs import check_known

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input on the command line: one line on stderr, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


_DATA_DIR_IS = "where the embedded database, blobs and key file live"


def _data_dir_default() -> str:
    """The data directory a command uses without --data-dir, as it is here and now."""
    named = os.environ.get("CIVICVAULT_DATA_DIR")
    if named:
        return f"{Path(named).absolute()}, from $CIVICVAULT_DATA_DIR"
    return f"{Path.cwd() / DEFAULT_DATA_DIR}; $CIVICVAULT_DATA_DIR names another"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="civicvault", description="civicvault e-credential vault")
    common = _Parser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"{_DATA_DIR_IS} (default: {_data_dir_default()})".replace("%", "%%"),
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = commands.add_parser("serve", parents=[common], help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8000,
                       help="port to listen on (default 8000)")
    serve.add_argument(
        "--demo", action="store_true", help="seed a demo community and print tokens to try it"
    )
    serve.add_argument(
        "--workers", type=_positive_int, default=1, help="worker processes (default 1)"
    )
    serve.set_defaults(run=_serve)

    token = commands.add_parser(
        "token", parents=[common], help="print one signed bearer token (JWT) on stdout"
    )
    token.add_argument("role", choices=ROLES)
    token.add_argument("subject", help="resident id, officer id, auditor or platform name")
    token.add_argument("--dept", help="the officer's department (required for officers)")
    token.add_argument("--unit", help="the unit a clerk or supervisor works at (required for "
                       "them; an officer may name one)")
    token.add_argument("--ttl", type=_positive_int, default=None, metavar="SECONDS",
                       help="lifetime (default: $CIVICVAULT_TOKEN_TTL_SECONDS, else 3600)")
    token.set_defaults(run=_token)

    demo = commands.add_parser(
        "demo",
        help="a narrated walk through the vault, on a scratch store of its own (removed "
        "afterwards) unless --data-dir names one",
    )
    demo.add_argument(
        "--data-dir", type=Path, default=None,
        help=f"{_DATA_DIR_IS} (default: a scratch directory of its own, removed afterwards)",
    )
    demo.set_defaults(run=_demo)

    gc = commands.add_parser(
        "gc", parents=[common], help="delete blobs that no event references"
    )
    gc.add_argument(
        "--grace",
        type=_non_negative_int,
        default=None,
        metavar="SECONDS",
        help="keep unreferenced blobs younger than this (default: $CIVICVAULT_GC_GRACE_SECONDS, "
        "else 86400)",
    )
    gc.set_defaults(run=_gc)

    policy = commands.add_parser("policy", help="access policy")
    policy_commands = policy.add_subparsers(
        dest="policy_command", required=True, parser_class=_Parser
    )
    publish = policy_commands.add_parser(
        "publish", parents=[common], help="record a policy file as the new version in force"
    )
    publish.add_argument("file", type=Path, help="a Casbin policy CSV for policy/model.conf")
    publish.set_defaults(run=_publish_policy)

    catalogue = commands.add_parser("catalogue", help="units, departments, services (事项目录)")
    catalogue_commands = catalogue.add_subparsers(
        dest="catalogue_command", required=True, parser_class=_Parser
    )
    publish = catalogue_commands.add_parser(
        "publish", parents=[common], help="record a catalogue file as the new version in force"
    )
    publish.add_argument("file", type=Path, help="a catalogue TOML like policy/catalogue.toml")
    publish.set_defaults(run=_publish_catalogue)

    projections = commands.add_parser("projections", help="the read models")
    projection_commands = projections.add_subparsers(
        dest="projections_command", required=True, parser_class=_Parser
    )
    rebuild = projection_commands.add_parser(
        "rebuild", parents=[common],
        help="build the read models again from the first event (the service keeps serving)",
    )
    rebuild.set_defaults(run=_rebuild_projections)
    follow = projection_commands.add_parser(
        "run", parents=[common],
        help="keep the read models up to date, as a worker apart from the API processes",
    )
    follow.set_defaults(run=_run_projections)

    _add_audit_commands(commands, common)

    keys = commands.add_parser("keys", help="key management")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, parser_class=_Parser)
    rotate = key_commands.add_parser(
        "rotate-master",
        parents=[common],
        help="re-wrap every resident and signing key under a new master key",
    )
    rotate.set_defaults(run=_rotate_master)
    retire = key_commands.add_parser(
        "retire-previous",
        parents=[common],
        help="finish a rotation: re-wrap stragglers under the current key, retire the old one",
    )
    retire.set_defaults(run=_retire_previous)
    return parser


def _add_audit_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    audit = commands.add_parser("audit", help="the ledger, re-adjudication, evidence")
    audit_commands = audit.add_subparsers(
        dest="audit_command", required=True, parser_class=_Parser
    )
    verify = audit_commands.add_parser(
        "verify", parents=[common],
        help="recompute the ledger from the event store and check every checkpoint "
        "(exit 0 intact, 1 with the first bad event)",
    )
    verify.add_argument(
        "--keys", type=Path, metavar="JWKS",
        help="check signatures with these checkpoint keys (/.well-known/checkpoint-keys.json, "
        "saved earlier) instead of the ones in the database",
    )
    verify.add_argument(
        "--checkpoint", type=Path, action="append", default=[], metavar="FILE",
        help="a checkpoint saved earlier from /v1/audit/checkpoints/latest (or a JSON list "
        "of them) that the log must still match; may be given more than once",
    )
    verify.set_defaults(run=_audit_verify)
    window = _Parser(add_help=False)
    window.add_argument("--since", type=_moment, help="RFC 3339 time with offset")
    window.add_argument("--until", type=_moment, help="RFC 3339 time with offset (excluded)")
    readjudicate = audit_commands.add_parser(
        "readjudicate", parents=[common, window],
        help="make every recorded decision again and list mismatches (exit 1 if any)",
    )
    readjudicate.set_defaults(run=_audit_readjudicate)
    export = audit_commands.add_parser(
        "export", parents=[common, window],
        help="write a resident's access events with their proofs, signed, to a file",
    )
    export.add_argument("--resident", required=True, help="the resident id")
    export.add_argument("out", type=Path, help="the bundle file to write (JSON)")
    export.set_defaults(run=_audit_export)
    check = audit_commands.add_parser(
        "verify-bundle", parents=[common],
        help="check an evidence bundle (exit 0 intact, 1 with what is wrong)",
    )
    check.add_argument("file", type=Path)
    check.add_argument(
        "--keys", type=Path, metavar="JWKS",
        help="the checkpoint keys (/.well-known/checkpoint-keys.json) to check offline; "
        "default: this deployment's keys",
    )
    check.set_defaults(run=_audit_verify_bundle)


# How each kind of failure is told: bad input exits 2, a refused operation 1.
_FAILURES: tuple[tuple[type[BaseException], str, int], ...] = (
    (UsageError, "error", EXIT_USAGE),
    (InvalidInput, "invalid input", EXIT_USAGE),
    (InvalidPolicy, "invalid policy", EXIT_USAGE),
    (InvalidCatalogue, "invalid catalogue", EXIT_USAGE),
    (BadMasterKey, "error: master key", EXIT_USAGE),
    (NothingToExport, "refused", EXIT_FAILED),
    (RebuildRunning, "refused", EXIT_FAILED),
    (VaultError, "refused", EXIT_FAILED),
    (KeyLayerError, "key error", EXIT_FAILED),
)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        settings = _settings(args.data_dir)
        run: Callable[[argparse.Namespace, Settings], int] = args.run
        return run(args, settings)
    except KeyboardInterrupt:
        return _fail("civicvault: interrupted", 130)
    except tuple(kind for kind, _, _ in _FAILURES) as e:
        label, code = next((lbl, c) for kind, lbl, c in _FAILURES if isinstance(e, kind))
        return _fail(f"civicvault: {label}: {e}", code)


def _settings(data_dir: Path | None) -> Settings:
    try:
        if data_dir is not None:
            return Settings(data_dir=data_dir)
        return Settings()
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"CIVICVAULT_{field.upper()}: {first['msg']}") from None


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port from 1 to 65535")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no time zone offset")
    return moment


def _fail(message: str, code: int) -> int:
    print(message.replace("\n", " "), file=sys.stderr)
    return code


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from adapters.community import print_welcome, seed
    from adapters.demo_city import DemoClock
    from adapters.http.app import create_app
    from adapters.http.server import SERVER_OPTIONS

    if args.demo:  # and the demo's sign-in: pick a person at /signin
        settings = settings.model_copy(update={"demo": True})
        os.environ["CIVICVAULT_DEMO"] = "true"  # for the workers, when there are several
    clock = DemoClock()  # real time, but for the demo's history while it is seeded
    with open_services(settings, clock=clock) as services:
        if args.demo:
            seeded = seed(services, clock)
            print(
                "civicvault: demo community " + ("seeded" if seeded else "already there"),
                file=sys.stderr,
            )
            print_welcome(services, f"http://{args.host}:{args.port}", sys.stdout)
        if args.workers == 1:
            # The app closes the services when it shuts down: on SIGTERM uvicorn shuts
            # down gracefully, then raises the signal again to exit by it, so leaving this
            # block closes them only if the server never started (closing twice is
            # harmless).
            uvicorn.run(
                create_app(services, owns_services=True), host=args.host, port=args.port,
                **SERVER_OPTIONS,
            )
            return EXIT_OK
    # Each worker opens the same stores from the same settings.
    os.environ["CIVICVAULT_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run(
        "adapters.http.app:app_from_environment", factory=True, workers=args.workers,
        host=args.host, port=args.port, **SERVER_OPTIONS,
    )
    return EXIT_OK


def _token(args: argparse.Namespace, settings: Settings) -> int:
    if args.role == "officer" and not args.dept:
        raise UsageError("an officer's token needs --dept DEPARTMENT")
    if args.dept is not None:
        check_known("dept", "department", args.dept)
    if args.role in AT_A_UNIT and not args.unit:
        raise UsageError(f"a {args.role}'s token needs --unit UNIT")
    if args.unit is not None:
        if args.role not in (*AT_A_UNIT, "officer"):
            raise UsageError(f"a {args.role}'s token names no unit")
        check_known("unit", "unit", args.unit)
    if not is_subject(args.subject):
        raise UsageError(SUBJECT_RULE.replace("sub ", "the subject ", 1))
    if args.role == "resident":
        check_resident_id(args.subject)
    ttl = args.ttl if args.ttl is not None else settings.token_ttl_seconds
    if ttl > settings.token_max_lifetime_seconds:
        raise UsageError(
            f"--ttl {ttl} is longer than the {settings.token_max_lifetime_seconds} s a token "
            "may live (CIVICVAULT_TOKEN_MAX_LIFETIME_SECONDS)"
        )
    with open_services(settings) as services:
        token = issue_token(
            services.signing.current("tokens"),
            role=args.role,
            subject=args.subject,
            department=args.dept,
            unit=args.unit,
            ttl=timedelta(seconds=ttl),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            now=services.clock.now(),
        )
    print(token)
    return EXIT_OK


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.demo import run_demo

    if args.data_dir is not None:
        with open_services(settings) as services:
            run_demo(services, out=sys.stdout)
        return EXIT_OK
    # A walk of its own: nothing it registers lands in the store `serve` uses.
    with tempfile.TemporaryDirectory(prefix="civicvault-demo-") as scratch:
        own = Settings(
            data_dir=Path(scratch), database_url=None, s3_endpoint=None, master_key=None,
            previous_master_key=None, new_master_key=None,
        )
        with open_services(own) as services:
            run_demo(services, out=sys.stdout)
    return EXIT_OK


def _rebuild_projections(args: argparse.Namespace, settings: Settings) -> int:
    with open_services(settings) as services:
        total = services.events.head()
        progress = Progress("events applied", total=total, stream=sys.stderr)

        def report(reached: int, head: int) -> None:
            progress.total = head
            progress.update(reached)

        def stage(what: str) -> None:
            progress.done()  # the events are in; what follows moves no count
            print(f"civicvault: {what}…", file=sys.stderr, flush=True)

        reached = services.view_runner.rebuild(report, stage=stage)
        progress.done()
        generation = services.view_runner.generation()
    print(f"read models rebuilt up to event {reached}; generation {generation} is serving")
    return EXIT_OK


def _run_projections(args: argparse.Namespace, settings: Settings) -> int:
    stop = threading.Event()
    with open_services(settings) as services:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        print("civicvault: keeping the read models up to date (Ctrl-C to stop)", file=sys.stderr)
        services.view_runner.follow(stop)
    return EXIT_OK


def _publish_policy(args: argparse.Namespace, settings: Settings) -> int:
    text = _read_text(args.file)
    with open_services(settings) as services:
        before = services.policies.current_version()
        version = services.policies.publish(text).value
    return _published("policy", version, before)


def _publish_catalogue(args: argparse.Namespace, settings: Settings) -> int:
    text = _read_text(args.file)
    with open_services(settings) as services:
        before = services.catalogues.current().version
        version = services.catalogues.publish(text).value
    return _published("catalogue", version, before)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from None


def _published(what: str, version: str, before: str) -> int:
    if version == before:
        print(f"{what} {version} was already in force; nothing changed")
    else:
        print(f"{what} {version} is now in force (was {before})")
    return EXIT_OK


def _gc(args: argparse.Namespace, settings: Settings) -> int:
    grace = args.grace if args.grace is not None else settings.gc_grace_seconds
    with open_services(settings) as services:
        progress = Progress("gc: blobs examined", stream=sys.stderr)
        report = services.documents.collect_garbage(
            timedelta(seconds=grace), progress=progress.update
        )
        progress.done()
    print(
        f"examined {report.examined} blobs: deleted {report.deleted} unreferenced, "
        f"kept {report.referenced} referenced and {report.too_young} younger than {grace}s"
    )
    return EXIT_OK


def _rotate_master(args: argparse.Namespace, settings: Settings) -> int:
    if settings.master_key is not None:
        if settings.new_master_key is None:
            raise UsageError(
                "the master key comes from CIVICVAULT_MASTER_KEY: give every replica "
                "CIVICVAULT_NEW_MASTER_KEY (32 bytes, base64), then run this again"
            )
        new_key = MasterKey.from_base64(settings.new_master_key.get_secret_value())
        done = _rewrap_under(settings, new_key)
        print(
            f"re-wrapped keys: {done}, under master key {new_key.key_id}. Next, on every "
            "replica: CIVICVAULT_MASTER_KEY=<the new key>, CIVICVAULT_PREVIOUS_MASTER_KEY=<the "
            "old key>, no CIVICVAULT_NEW_MASTER_KEY; restart; then run "
            "`civicvault keys retire-previous`."
        )
        return EXIT_OK
    previous = previous_key_file(settings)
    if previous.exists():
        raise UsageError(
            f"{previous} is still there from the last rotation: run "
            "`civicvault keys retire-previous` first"
        )
    pending = next_key_file(settings)
    # An interrupted rotation resumes with the key it already wrote down.
    if pending.exists():
        new_key = MasterKey.from_base64(pending.read_text())
    else:
        new_key = MasterKey.generate()
        write_key_file(pending, new_key)
    done = _rewrap_under(settings, new_key)
    old_key = MasterKey.from_base64(settings.master_key_file.read_text())
    write_key_file(previous, old_key)
    write_key_file(settings.master_key_file, new_key)
    pending.unlink()
    print(
        f"re-wrapped keys: {done}, under master key {new_key.key_id}, now in "
        f"{settings.master_key_file}. The old key waits in {previous}: restart running "
        "civicvault processes, then run `civicvault keys retire-previous`."
    )
    return EXIT_OK


def _retire_previous(args: argparse.Namespace, settings: Settings) -> int:
    from_environment = settings.master_key is not None
    previous = previous_key_file(settings)
    if from_environment and settings.previous_master_key is None:
        raise UsageError("CIVICVAULT_PREVIOUS_MASTER_KEY is not set: there is nothing to retire")
    if not from_environment and not previous.exists():
        raise UsageError(f"{previous} does not exist: there is nothing to retire")
    with open_services(settings) as services:
        current = services.master.current
        done = _rewrap(services, current)
        left = services.key_table.count_wrapped(except_under=current.key_id)
    if left:
        print(f"{left} keys are still wrapped by another master key; nothing was retired")
        return EXIT_FAILED
    if from_environment:
        print(
            f"re-wrapped keys: {done}; every key is under master key {current.key_id}. "
            "Unset CIVICVAULT_PREVIOUS_MASTER_KEY on every replica and destroy the old key."
        )
    else:
        previous.unlink()
        print(
            f"re-wrapped keys: {done}; every key is under master key {current.key_id}. "
            f"The old key ({previous}) is destroyed."
        )
    return EXIT_OK


def _rewrap_under(settings: Settings, target: MasterKey) -> int:
    with open_services(settings) as services:
        return _rewrap(services, target)


def _rewrap(services: Services, target: MasterKey) -> int:
    table = services.key_table
    progress = Progress(
        "keys re-wrapped",
        total=table.count_wrapped(except_under=target.key_id),
        stream=sys.stderr,
    )
    done = rotate_master(table, services.master, target, progress.update)
    progress.done()
    return done



def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    anchors = [c for path in args.checkpoint for c in _checkpoints_file(path)]
    given_keys = _jwks_file(args.keys) if args.keys is not None else None
    with open_services(settings) as services:
        total = services.events.head()
        progress = Progress("events verified", total=total, stream=sys.stderr)
        verdict = verify_ledger(
            services.events, services.ledger,
            given_keys or services.signing.public_keys("checkpoints"),
            anchors=anchors, progress=progress.update,
        )
        progress.done()
    if not verdict.intact:
        print(f"TAMPERED: {verdict.problem}")
        return EXIT_FAILED
    print(
        f"intact: {verdict.events} events, {verdict.in_ledger} in the ledger, "
        f"{verdict.checkpoints} signed checkpoints verified"
    )
    return EXIT_OK


def _audit_readjudicate(args: argparse.Namespace, settings: Settings) -> int:
    with open_services(settings) as services:
        progress = Progress("events replayed", stream=sys.stderr)

        def report(done: int, head: int) -> None:
            progress.total = head
            progress.update(done)

        found = services.audit.readjudicate(args.since, args.until, progress=report)
        progress.done()
    for m in found.mismatches:
        print(
            f"MISMATCH event {m.event} ({m.at.isoformat()}): {m.officer} of {m.department} "
            f"fetching {m.document_id} of {m.resident_id} for {m.purpose}: recorded "
            f"{'allowed' if m.recorded_allowed else 'denied'} {list(m.recorded_reasons)}, "
            f"decided again {'allowed' if m.decided_allowed else 'denied'} "
            f"{list(m.decided_reasons)} under policy {m.policy_version[:12]}"
        )
    for a in found.acceptance_mismatches:
        print(
            f"MISMATCH event {a.event} ({a.at.isoformat()}): application {a.application_id} "
            f"of {a.resident_id} for {a.service_id} accepted with {', '.join(a.problems)} "
            f"not borne out by policy {a.policy_version[:12]} and catalogue "
            f"{a.catalogue_version[:12]}"
        )
    print(
        f"re-decided {found.checked} accesses ({found.unverifiable} of erased residents "
        f"unverifiable) and {found.acceptances} acceptances ({found.acceptances_unverifiable} "
        f"unverifiable) from {found.events} events: "
        f"{len(found.mismatches) + len(found.acceptance_mismatches)} mismatches"
    )
    return EXIT_FAILED if found.mismatches or found.acceptance_mismatches else EXIT_OK


def _audit_export(args: argparse.Namespace, settings: Settings) -> int:
    check_resident_id(args.resident)
    if args.out.is_dir():
        raise UsageError(f"{args.out} is a directory; give a file name")
    with open_services(settings) as services:
        services.view_runner.catch_up()  # the views list the entries: bring them up to date
        progress = Progress("entries proven", stream=sys.stderr)
        key = services.signing.current("checkpoints")
        exported = export_bundle(
            services.views, services.ledger, resident_id=args.resident, since=args.since,
            until=args.until, sign=lambda message: (key.kid, key.private_key.sign(message)),
            now=datetime.now(UTC), progress=progress.update,
        )
        progress.done()
    _write_atomically(
        args.out, json.dumps(exported.bundle, ensure_ascii=False, indent=1).encode()
    )
    print(
        f"wrote {exported.entries} access events of {args.resident}, proven against the "
        f"checkpoint at {exported.tree_size} events, to {args.out}"
        + (f" ({exported.left_out} newer than it left out)" if exported.left_out else "")
    )
    return EXIT_OK


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
        fsync_dir(path.parent)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {e.strerror}") from None


def _audit_verify_bundle(args: argparse.Namespace, settings: Settings) -> int:
    try:
        bundle = json.loads(args.file.read_bytes())
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {args.file} as JSON: {e}") from None
    if args.keys is not None:
        public_keys = _jwks_file(args.keys)
    else:
        with open_services(settings) as services:
            public_keys = services.signing.public_keys("checkpoints")
    try:
        verdict = verify_bundle(bundle, public_keys)
    except BundleError as e:
        raise UsageError(f"{args.file}: {e}") from None
    for problem in verdict.problems:
        print(f"BAD: {problem}")
    if not verdict.intact:
        return EXIT_FAILED
    print(
        f"intact: {verdict.entries} access events of {bundle['resident_id']}, each in the "
        f"ledger signed at {bundle['checkpoint']['tree_size']} events"
    )
    return EXIT_OK


def _jwks_file(path: Path) -> dict[str, Ed25519PublicKey]:
    try:
        keys = json.loads(path.read_bytes())["keys"]
        found = {
            k["kid"]: Ed25519PublicKey.from_public_bytes(
                base64.urlsafe_b64decode(k["x"] + "=" * (-len(k["x"]) % 4))
            )
            for k in keys
            if k.get("kty") == "OKP" and k.get("crv") == "Ed25519"
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(f"cannot read {path} as a JWK set of Ed25519 keys: {e}") from None
    if not found:
        raise UsageError(f"{path} holds no Ed25519 key")
    return found


def _checkpoints_file(path: Path) -> list[Checkpoint]:
    """Checkpoints saved from the API: one object, or a list of them."""
    try:
        data = json.loads(path.read_bytes())
        found = [Checkpoint.from_json(c) for c in (data if isinstance(data, list) else [data])]
    except (OSError, ValueError) as e:
        raise UsageError(f"cannot read {path} as checkpoints: {e}") from None
    if not found:
        raise UsageError(f"{path} holds no checkpoint")
    return found


if __name__ == "__main__":
    sys.exit(main())
