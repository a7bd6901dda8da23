"""The command line, run as a real process: demo, gc, master-key rotation, policy, rebuild
and bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adapters.settings import Settings
from adapters.wiring import open_services
from keys.master import MasterKey
from tests.support import read_document
from vault.inputs import DocumentDetails


def civicvault(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CIVICVAULT_")}
    clean.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args],
        capture_output=True,
        text=True,
        env=clean,
        timeout=120,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_demo_walks_through_the_vault(tmp_path: Path) -> None:
    result = civicvault("demo", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "WARNING: created a new master key" in result.stderr
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600
    for expected in [
        "trust level C → B",
        "identical to the upload: True",
        "stale 1, never overwrites B",
        "denied: consent",
        "replayed ID card title: ERASED",
        "cannot be decrypted: resident-erased",
        "an auditor verifies the ledger after the erasure\n  intact: ",
    ]:
        assert expected in result.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["frobnicate"], {}, "invalid choice"),
        (["gc", "--grace", "-5"], {}, "must not be negative"),
        (["gc", "--grace", "soon"], {}, "not a whole number"),
        (["gc"], {"CIVICVAULT_DATABASE_URL": "mysql://x"}, "CIVICVAULT_DATABASE_URL"),
        (["gc"], {"CIVICVAULT_MASTER_KEY": "c2hvcnQ="}, "master key"),
        (
            ["keys", "rotate-master"],
            {"CIVICVAULT_MASTER_KEY": MasterKey.generate().to_base64()},
            "CIVICVAULT_NEW_MASTER_KEY",
        ),
        (["token", "officer", "o1", "--dept", "ministry-of-magic"], {}, "catalogue"),
        (["token", "auditor", "sun\u202eil"], {}, "the subject must be"),
        (["token", "resident", "a b"], {}, "the subject must be"),
        (["token", "auditor", "sun", "--ttl", "86401"], {}, "longer than the 86400 s"),
        (["token", "auditor", "sun"], {"CIVICVAULT_TOKEN_TTL_SECONDS": "90000"},
         "token_max_lifetime_seconds"),
        (["token", "clerk", "wang"], {}, "needs --unit"),
        (["token", "supervisor", "zhao", "--unit", "atlantis"], {}, "no unit of the catalogue"),
        (["token", "auditor", "sun", "--unit", "anle"], {}, "names no unit"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    line = _one_line_error(civicvault(*args, "--data-dir", str(tmp_path), env=env))
    assert message in line
    assert not (tmp_path / "vault.sqlite3").exists()


@pytest.mark.parametrize(("role", "unit"), [("clerk", "anle"), ("supervisor", "dongcheng")])
def test_a_clerks_or_supervisors_token_names_their_unit(
    tmp_path: Path, role: str, unit: str
) -> None:
    import jwt

    result = civicvault("token", role, "wang-li", "--unit", unit, "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), options={"verify_signature": False})
    assert (claims["role"], claims["unit"], claims["sub"]) == (role, unit, "wang-li")


def test_gc_sweeps_old_orphans_and_keeps_documents(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    services = open_services(settings)
    document = services.documents.submit(
        "r1", io.BytesIO(b"kept"), DocumentDetails("id-card", "card")
    ).value
    services.close()
    orphan = settings.blob_dir / "documents" / "zz" / "orphan"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"crashed upload")
    old = time.time() - 3600
    os.utime(orphan, (old, old))

    result = civicvault("gc", "--grace", "600", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "deleted 1 unreferenced, kept 1 referenced" in result.stdout
    assert "gc: blobs examined: 2" in result.stderr
    assert not orphan.exists()
    assert (settings.blob_dir / document.blob_key).exists()


def _file_and_read_back(settings: Settings, resident_id: str = "r1") -> tuple[object, bytes]:
    services = open_services(settings)
    try:
        document = services.documents.submit(
            resident_id, io.BytesIO(b"secret"), DocumentDetails("id-card", "card")
        ).value
        return document.id, b"".join(read_document(services, resident_id, document.id))
    finally:
        services.close()


def _read(settings: Settings, document_id: object) -> bytes:
    services = open_services(settings)
    try:
        return b"".join(read_document(services, "r1", document_id))
    finally:
        services.close()


def test_rotating_the_key_file_then_retiring_the_old_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    document_id, content = _file_and_read_back(settings)
    old_key = settings.master_key_file.read_text().strip()

    rotated = civicvault("keys", "rotate-master", "--data-dir", str(tmp_path))
    assert rotated.returncode == 0, rotated.stderr
    assert "re-wrapped keys: 1," in rotated.stdout  # the resident key
    assert settings.master_key_file.read_text().strip() != old_key
    assert (tmp_path / "master.key.previous").read_text().strip() == old_key
    assert not (tmp_path / "master.key.next").exists()
    assert _read(settings, document_id) == content

    again = civicvault("keys", "rotate-master", "--data-dir", str(tmp_path))
    assert "retire-previous" in _one_line_error(again)

    # A process that still ran with the old key registered someone meanwhile.
    _file_and_read_back(Settings(data_dir=tmp_path, master_key=old_key), resident_id="r2")

    retired = civicvault("keys", "retire-previous", "--data-dir", str(tmp_path))
    assert retired.returncode == 0, retired.stderr
    assert "re-wrapped keys: 1;" in retired.stdout  # the straggler
    assert not (tmp_path / "master.key.previous").exists()
    assert _read(settings, document_id) == content
    with pytest.raises(Exception, match="no configured master key"):
        _read(Settings(data_dir=tmp_path, master_key=old_key), document_id)


def test_an_interrupted_rotation_is_resumed_with_the_same_new_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    document_id, content = _file_and_read_back(settings)
    pending = MasterKey.generate()
    (tmp_path / "master.key.next").write_text(pending.to_base64())
    assert _read(settings, document_id) == content
    result = civicvault("keys", "rotate-master", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert MasterKey.from_base64(settings.master_key_file.read_text()) == pending
    assert _read(settings, document_id) == content


def test_rotating_an_environment_key(tmp_path: Path) -> None:
    old, new = MasterKey.generate().to_base64(), MasterKey.generate().to_base64()
    document_id, content = _file_and_read_back(Settings(data_dir=tmp_path, master_key=old))
    result = civicvault(
        "keys",
        "rotate-master",
        "--data-dir",
        str(tmp_path),
        env={"CIVICVAULT_MASTER_KEY": old, "CIVICVAULT_NEW_MASTER_KEY": new},
    )
    assert result.returncode == 0, result.stderr
    assert "CIVICVAULT_PREVIOUS_MASTER_KEY=<the old key>" in result.stdout
    retired = civicvault(
        "keys",
        "retire-previous",
        "--data-dir",
        str(tmp_path),
        env={"CIVICVAULT_MASTER_KEY": new, "CIVICVAULT_PREVIOUS_MASTER_KEY": old},
    )
    assert retired.returncode == 0, retired.stderr
    assert "Unset CIVICVAULT_PREVIOUS_MASTER_KEY" in retired.stdout
    assert _read(Settings(data_dir=tmp_path, master_key=new), document_id) == content


def test_a_shared_database_needs_the_master_key_from_the_environment(tmp_path: Path) -> None:
    line = _one_line_error(
        civicvault(
            "gc",
            "--data-dir",
            str(tmp_path),
            env={"CIVICVAULT_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
        )
    )
    assert "CIVICVAULT_MASTER_KEY must be set" in line
    assert not (tmp_path / "master.key").exists()


def test_publishing_a_policy_file(tmp_path: Path) -> None:
    stricter = tmp_path / "stricter.csv"
    stricter.write_text(
        "g, officer, caseworker, civil-affairs\n"
        "p, caseworker, civil-affairs, id-card, subsistence-allowance, A, B\n"
    )
    first = civicvault("policy", "publish", str(stricter), "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "is now in force" in first.stdout
    again = civicvault("policy", "publish", str(stricter), "--data-dir", str(tmp_path))
    assert "already in force; nothing changed" in again.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("p, caseworker, civil-affairs, id-card, x, C, C\np, caseworker, x\n", "line 2: a p rule"),
        ("p, caseworker, civil-affairs, id-card, x, E, C\n", "line 1: min_grade 'E'"),
        ("# only a comment\n", "no access (p) rules"),
    ],
)
def test_a_bad_policy_file_is_refused_and_nothing_changes(
    tmp_path: Path, text: str, message: str
) -> None:
    settings = Settings(data_dir=tmp_path)
    services = open_services(settings)
    before = services.policies.current_version()
    services.close()
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    line = _one_line_error(civicvault("policy", "publish", str(bad), "--data-dir", str(tmp_path)))
    assert message in line
    services = open_services(settings)
    assert services.policies.current_version() == before
    services.close()


def _catalogue_with_a_new_community(tmp_path: Path) -> Path:
    from policy.catalogue import shipped_catalogue_text

    changed = tmp_path / "catalogue.toml"
    changed.write_text(
        shipped_catalogue_text()
        + '\n[[unit]]\nid = "new-dawn"\nlevel = "community"\nparent = "heping-street"\n'
        'name_zh = "新曙光社区"\nname_en = "New Dawn Community"\n',
        encoding="utf-8",
    )
    return changed


def test_publishing_a_catalogue_file(tmp_path: Path) -> None:
    changed = _catalogue_with_a_new_community(tmp_path)
    first = civicvault("catalogue", "publish", str(changed), "--data-dir", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "is now in force" in first.stdout
    again = civicvault("catalogue", "publish", str(changed), "--data-dir", str(tmp_path))
    assert "already in force; nothing changed" in again.stdout
    with open_services(Settings(data_dir=tmp_path)) as services:
        in_force = services.catalogues.current()
    assert in_force.knows("unit", "new-dawn")


def test_a_bad_catalogue_file_is_refused_with_its_line_and_nothing_changes(
    tmp_path: Path,
) -> None:
    open_services(Settings(data_dir=tmp_path)).close()  # the master key exists already
    changed = _catalogue_with_a_new_community(tmp_path)
    new_unit = 'parent = "heping-street"\nname_zh = "新曙光社区"'
    text = changed.read_text(encoding="utf-8").replace(
        new_unit, new_unit.replace("heping-street", "nowhere")
    )
    changed.write_text(text, encoding="utf-8")
    line = _one_line_error(
        civicvault("catalogue", "publish", str(changed), "--data-dir", str(tmp_path))
    )
    expected = text.splitlines().index('parent = "nowhere"') + 1
    assert line == (
        f"civicvault: invalid catalogue: line {expected}: "
        "parent 'nowhere' is no unit of the catalogue"
    )
    with open_services(Settings(data_dir=tmp_path)) as services:
        assert not services.catalogues.current().knows("unit", "new-dawn")
        assert services.events.head() == 0


def test_a_missing_policy_file_is_refused(tmp_path: Path) -> None:
    line = _one_line_error(
        civicvault("policy", "publish", str(tmp_path / "nope.csv"), "--data-dir", str(tmp_path))
    )
    assert "cannot read" in line


def test_rebuilding_the_read_models_shows_progress_and_one_at_a_time(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    services = open_services(settings)
    try:
        for number in range(30):
            services.residents.register(f"r{number}")
        head = services.events.head()
        serving = services.view_runner.generation()
        with services.view_runner.db.exclusive("rebuild"):  # as a rebuild elsewhere holds it
            refused = civicvault("projections", "rebuild", "--data-dir", str(tmp_path))
    finally:
        services.close()
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip() == (
        "civicvault: refused: another rebuild of the read models is running; "
        "wait for it to finish"
    )
    result = civicvault("projections", "rebuild", "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert f"events applied: {head}/{head} (" in result.stderr
    assert result.stdout.strip() == (
        f"read models rebuilt up to event {head}; generation {serving + 1} is serving"
    )


def test_demo_without_a_data_dir_leaves_the_served_store_alone(tmp_path: Path) -> None:
    """`make run` serves ./.civicvault (or $CIVICVAULT_DATA_DIR); the narrated demo walks on a
    scratch store of its own, so the served community gets no second 张伟."""
    served = tmp_path / "served"
    result = civicvault("demo", env={"CIVICVAULT_DATA_DIR": str(served)})
    assert result.returncode == 0, result.stderr
    assert "replayed ID card title: ERASED" in result.stdout
    assert not served.exists()


def test_the_demo_welcome_never_sends_document_bytes_to_the_terminal(tmp_path: Path) -> None:
    """Every printed curl line that fetches a document's bytes writes them to a file: a
    denied fetch becomes an image once the resident's grade allows it."""
    from adapters.community import print_welcome, seed

    settings = Settings(data_dir=tmp_path, master_key=MasterKey.generate().to_base64())  # type: ignore[arg-type]
    with open_services(settings) as services:
        seed(services)
        out = io.StringIO()
        print_welcome(services, "http://127.0.0.1:8000", out)
    assert "pages:      http://127.0.0.1:8000/signin" in out.getvalue()  # where people begin
    fetches = [line for line in out.getvalue().splitlines() if "/content" in line]
    assert len(fetches) == 2
    for line in fetches:
        assert line.strip().startswith("curl ")
        assert " -o " in line, line


def test_serve_help_says_the_data_directory_it_would_use(tmp_path: Path) -> None:
    """The --data-dir default named in the help is the one serve would use here and now."""

    def said(*args: str, env: dict[str, str] | None = None) -> str:
        return "".join(civicvault(*args, env=env).stdout.split())  # however it is wrapped

    def squeezed(text: str) -> str:
        return "".join(text.split())

    plain = said("serve", "--help")
    assert squeezed(f"(default: {Path.cwd() / '.civicvault'};") in plain, plain
    assert squeezed("(default 127.0.0.1)") in plain
    assert squeezed("(default 8000)") in plain
    named = said("serve", "--help", env={"CIVICVAULT_DATA_DIR": str(tmp_path)})
    assert squeezed(f"(default: {tmp_path}, from $CIVICVAULT_DATA_DIR") in named, named
    demo = said("demo", "--help")
    assert squeezed("(default: a scratch directory") in demo, demo
