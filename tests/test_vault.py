"""Ansible Vault values in inventories: genuine vectors, passwords, errors, secrecy.

The envelopes below are Ansible's own test data, used as data: ciphertext and
password pairs from github.com/ansible/ansible at commit
c9ac477e53a99e95781f333eec3329a935c1bf95, test/integration/targets/ansible-vault/
(roles/test_vault_embedded/vars/main.yml, roles/test_vault_embedded_ids/vars/
main.yml and format_1_2_AES256.yml, whose passwords are in the files
vault-password and example2_password there, and whose plaintexts the tasks and
runme.sh beside them assert).
"""

from __future__ import annotations

import binascii
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from fleetcompat.cli.main import main
from fleetcompat.documents import parse_text
from fleetcompat.errors import InputError, InventoryError
from fleetcompat.inventory import parse_inventory
from fleetcompat.vault import Keyring, PasswordSource, Secret, Vaulted

# roles/test_vault_embedded/vars/main.yml: vault_encrypted_one_line_var
ONE_LINE_11 = """\
$ANSIBLE_VAULT;1.1;AES256
33363965326261303234626463623963633531343539616138316433353830356566396130353436
3562643163366231316662386565383735653432386435610a306664636137376132643732393835
63383038383730306639353234326630666539346233376330303938323639306661313032396437
6233623062366136310a633866373936313238333730653739323461656662303864663666653563
3138
"""
# roles/test_vault_embedded/vars/main.yml: vault_encrypted_var
MULTI_LINE_11 = """\
$ANSIBLE_VAULT;1.1;AES256
66386439653236336462626566653063336164663966303231363934653561363964363833313662
6431626536303530376336343832656537303632313433360a626438346336353331386135323734
62656361653630373231613662633962316233633936396165386439616533353965373339616234
3430613539666330390a313736323265656432366236633330313963326365653937323833366536
34623731376664623134383463316265643436343438623266623965636363326136
"""
# roles/test_vault_embedded_ids/vars/main.yml: vault_encrypted_example2_hello
EXAMPLE2_12 = """\
$ANSIBLE_VAULT;1.2;AES256;example2
30383930326535616363383537613266376364323738313835353566633533353364363837383638
3737633764613862343666346337353964613138653036610a313663393231386139343835626436
66633336303866323335616661366363333463616530326635383836656432396665313338313737
6539616630663262650a383762303362356438616261646564303230633930336563373566623235
3566
"""
# format_1_2_AES256.yml
FORMAT_12 = """\
$ANSIBLE_VAULT;1.2;AES256;test_vault_id
30383835613535356232333534303264656530633664616233386138396563623939626136366537
3635323530646538626138383136636437616637616430610a386661346563346136326637656461
64393364343964633364336666333630383164643662343930663432316333633537353938376437
6134656262373731390a363166356461376663313532343733326438386632623930313366643038
6133
"""
VAULT_PASSWORD = "test-vault-password"  # the file vault-password
EXAMPLE2_PASSWORD = "example2"  # the file example2_password


def password_file(directory: Path, text: str, name: str = "vault-pass") -> Path:
    """A plain vault password file, as `ansible-vault` users keep one."""
    path = directory / name
    path.write_text(text + "\n")
    return path


def script(directory: Path, name: str, body: str) -> Path:
    """An executable password script."""
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def inventory_with(variables: dict[str, str], group_vars: str = "") -> str:
    """A YAML inventory: host h (local) in group g, `variables` as !vault."""
    lines = ["all:", "  children:", "    g:", "      vars:"]
    lines += ["        " + line for line in group_vars.splitlines()]
    lines += ["      hosts:", "        h:", "          ansible_connection: local"]
    for key, envelope in variables.items():
        lines.append(f"          {key}: !vault |")
        lines += ["            " + line for line in envelope.splitlines()]
    return "\n".join(lines) + "\n"


def keyring(*passwords: Path) -> Keyring:
    """A keyring of plain password files, as --vault-password-file gives them."""
    return Keyring.from_options(password_files=[str(p) for p in passwords], environ={})


@pytest.mark.parametrize(
    ("envelope", "password", "plain"),
    [
        (ONE_LINE_11, VAULT_PASSWORD, "Setec Astronomy"),
        (MULTI_LINE_11, VAULT_PASSWORD, "Setec Astronomy\n"),
        (EXAMPLE2_12, EXAMPLE2_PASSWORD, "Hello world"),
        (FORMAT_12, VAULT_PASSWORD, "foobar\n"),
    ],
    ids=["1.1-one-line", "1.1-multi-line", "1.2-vault-id-example2", "1.2-file"],
)
def test_decrypts_ansible_test_vectors(
    tmp_path: Path, envelope: str, password: str, plain: str
) -> None:
    ring = keyring(password_file(tmp_path, password))

    assert ring.decrypt(Vaulted(envelope)) == plain


def test_vaulted_connection_variables_are_decrypted_in_a_yaml_inventory(
    tmp_path: Path,
) -> None:
    text = inventory_with({"ansible_user": ONE_LINE_11, "ansible_password": FORMAT_12})

    host = parse_inventory(
        text, "inv.yaml", keyring(password_file(tmp_path, VAULT_PASSWORD))
    ).host("h")

    assert host.user == "Setec Astronomy"
    assert host.password is not None and host.password.reveal() == "foobar\n"


def test_the_password_labelled_with_the_vault_id_opens_it_among_several(
    tmp_path: Path,
) -> None:
    wrong = password_file(tmp_path, VAULT_PASSWORD, "other")
    right = password_file(tmp_path, EXAMPLE2_PASSWORD, "example2")
    ring = Keyring.from_options([f"other@{wrong}", f"example2@{right}"], environ={})

    assert ring.decrypt(Vaulted(EXAMPLE2_12)) == "Hello world"


def test_wrong_password_names_file_line_host_group_and_variable(
    tmp_path: Path,
) -> None:
    group_vars = "ansible_password: !vault |\n" + "".join(
        "  " + line + "\n" for line in ONE_LINE_11.splitlines()
    )
    text = inventory_with({}, group_vars)
    wrong = password_file(tmp_path, "hunter42")

    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inv.yaml", keyring(wrong)).select(None)

    message = str(caught.value)
    assert message.startswith("inv.yaml: line 5: host 'h': ansible_password: ")
    assert "set in group 'g'" in message
    assert "wrong password" in message and str(wrong) in message
    assert "hunter42" not in message


def test_no_vault_password_for_a_used_value_is_a_clear_error() -> None:
    text = inventory_with({"ansible_host": ONE_LINE_11})

    with pytest.raises(InventoryError) as caught:
        parse_inventory(text, "inv.yaml", Keyring()).select("h")

    message = str(caught.value)
    assert "host 'h': ansible_host: set in the vars of host 'h'" in message
    assert "--vault-password-file" in message


def test_a_host_left_out_by_limit_needs_no_vault_password() -> None:
    text = inventory_with({"ansible_password": ONE_LINE_11})
    text += "    other:\n      hosts:\n        o:\n          ansible_user: u\n"

    inventory = parse_inventory(text, "inv.yaml", Keyring())

    assert [h.name for h in inventory.select("other")] == ["o"]
    assert "vaulted" in inventory.host("h").skip
    with pytest.raises(InventoryError, match="host 'h': ansible_password"):
        inventory.select("all")


def test_a_vaulted_variable_fleetcompat_does_not_use_stays_unread() -> None:
    group_vars = "db_password: !vault |\n" + "".join(
        "  " + line + "\n" for line in MULTI_LINE_11.splitlines()
    )
    text = inventory_with({"some_other_secret": FORMAT_12}, group_vars)

    host = parse_inventory(text, "inv.yaml", Keyring()).host("h")

    assert host.local and host.password is None


def test_a_tampered_value_fails_its_hmac(tmp_path: Path) -> None:
    lines = ONE_LINE_11.splitlines()
    salt, mac, data = binascii.unhexlify("".join(lines[1:])).split(b"\n")
    flipped = data[:-1] + (b"0" if data[-1:] != b"0" else b"1")
    body = binascii.hexlify(b"\n".join([salt, mac, flipped])).decode()
    tampered = "\n".join(
        [lines[0], *(body[i : i + 80] for i in range(0, len(body), 80))]
    )
    ring = keyring(password_file(tmp_path, VAULT_PASSWORD))

    with pytest.raises(InventoryError, match="altered \\(HMAC mismatch\\)"):
        ring.decrypt(Vaulted(tampered))


def test_a_damaged_envelope_is_refused_as_such(tmp_path: Path) -> None:
    ring = keyring(password_file(tmp_path, VAULT_PASSWORD))

    with pytest.raises(InventoryError, match="damaged"):
        ring.decrypt(Vaulted(ONE_LINE_11.replace("3336", "zz36", 1)))
    with pytest.raises(InventoryError, match="1.1 or 1.2"):
        ring.decrypt(Vaulted(ONE_LINE_11.replace(";1.1;", ";9.9;")))


def test_an_executable_password_file_is_run_once_and_its_stdout_used(
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    run = script(
        tmp_path, "vault-pass.sh", f"echo x >> {runs}\necho {VAULT_PASSWORD}\n"
    )
    text = inventory_with({"ansible_user": ONE_LINE_11, "ansible_password": FORMAT_12})

    host = parse_inventory(text, "inv.yaml", keyring(run)).host("h")

    assert host.user == "Setec Astronomy"
    assert runs.read_text() == "x\n"


def test_a_client_script_is_asked_for_the_vault_id(tmp_path: Path) -> None:
    client = script(
        tmp_path,
        "keyring-client.sh",
        '[ "$1" = --vault-id ] && [ "$2" = example2 ] && echo example2 && exit 0\n'
        'echo "no key for $2" >&2; exit 2\n',
    )

    good = Keyring.from_options([f"example2@{client}"], environ={})
    unknown = Keyring.from_options([f"nosuch@{client}"], environ={})

    assert good.decrypt(Vaulted(EXAMPLE2_12)) == "Hello world"
    with pytest.raises(InventoryError, match="knows no password for vault id 'nosuch'"):
        unknown.decrypt(Vaulted(EXAMPLE2_12))


def test_a_failing_password_script_is_named_with_its_status(tmp_path: Path) -> None:
    failing = script(tmp_path, "pass.sh", "echo 'keyring locked' >&2\nexit 5\n")

    with pytest.raises(InventoryError) as caught:
        keyring(failing).decrypt(Vaulted(ONE_LINE_11))

    assert str(failing) in str(caught.value)
    assert "exited with status 5: keyring locked" in str(caught.value)


def test_the_environment_names_a_password_file_as_for_ansible(tmp_path: Path) -> None:
    path = password_file(tmp_path, VAULT_PASSWORD)

    ring = Keyring.from_options(environ={"ANSIBLE_VAULT_PASSWORD_FILE": str(path)})

    assert ring.sources == (PasswordSource(str(path), "default"),)
    assert ring.decrypt(Vaulted(ONE_LINE_11)) == "Setec Astronomy"


def test_ansible_cfg_vault_defaults_join_the_command_line_as_in_ansible(
    tmp_path: Path,
) -> None:
    (tmp_path / "secrets").mkdir()
    listed = password_file(tmp_path / "secrets", EXAMPLE2_PASSWORD, "example2")
    default = password_file(tmp_path / "secrets", VAULT_PASSWORD, "default")
    config = tmp_path / "ansible.cfg"
    config.write_text(
        "[defaults]\n"
        f"vault_identity_list = example2@{listed}\n"
        "vault_password_file = secrets/default  ; relative to this file\n"
    )
    given = password_file(tmp_path, "not it", "given")

    ring = Keyring.from_options(
        [f"ops@{given}"], environ={"ANSIBLE_CONFIG": str(config)}
    )
    env_wins = Keyring.from_options(
        environ={"ANSIBLE_CONFIG": str(config), "ANSIBLE_VAULT_IDENTITY_LIST": ""}
    )

    assert ring.sources == (
        PasswordSource(str(listed), "example2"),
        PasswordSource(str(given), "ops"),
        PasswordSource(str(default), "default"),
    )
    assert ring.decrypt(Vaulted(EXAMPLE2_12)) == "Hello world"
    assert ring.decrypt(Vaulted(ONE_LINE_11)) == "Setec Astronomy"
    assert env_wins.sources == (PasswordSource(str(default), "default"),)


@pytest.mark.parametrize("slug", ["prompt", "ops@prompt"])
def test_a_prompt_is_refused_never_asked(slug: str) -> None:
    with pytest.raises(InputError, match="never prompts"):
        Keyring.from_options([slug], environ={})


def test_ansible_inventory_list_json_vault_values_are_read(tmp_path: Path) -> None:
    listing = {
        "_meta": {
            "hostvars": {"h": {"ansible_user": {"__ansible_vault": ONE_LINE_11}}}
        },
        "all": {"children": ["ungrouped"]},
        "ungrouped": {"hosts": ["h"]},
    }
    ring = keyring(password_file(tmp_path, VAULT_PASSWORD))

    inventory = parse_inventory(json.dumps(listing), "list.json", ring)

    assert inventory.host("h").user == "Setec Astronomy"


def test_vault_tag_on_a_mapping_is_an_inventory_error() -> None:
    text = "all:\n  hosts:\n    h:\n      ansible_user: !vault {a: 1}\n"

    with pytest.raises(InventoryError, match="line 4: !vault must tag a string"):
        parse_inventory(text, "inv.yaml", Keyring())


def test_other_documents_do_not_accept_the_vault_tag() -> None:
    with pytest.raises(InputError, match="vault"):
        parse_text("a: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n", "spec.yaml")


def test_the_password_never_shows_in_reprs(tmp_path: Path) -> None:
    text = "all:\n  hosts:\n    h:\n      ansible_ssh_pass: Hunter2-secret\n"

    inventory = parse_inventory(text, "inv.yaml", Keyring())
    host = inventory.host("h")

    assert host.password is not None and host.password.reveal() == "Hunter2-secret"
    for shown in (repr(host), str(host), repr(inventory), repr(host.password)):
        assert "Hunter2" not in shown
    assert f"{host.password}" == "Secret('********')"
    assert isinstance(host.password, Secret)


def test_password_variables_follow_ansible_precedence() -> None:
    text = (
        "all:\n  vars:\n    ansible_password: fromall\n  hosts:\n"
        "    h:\n      ansible_ssh_pass: fromhost\n    i:\n"
    )

    inventory = parse_inventory(text, "inv.yaml", Keyring())

    assert inventory.host("i").password.reveal() == "fromall"  # type: ignore[union-attr]
    # As Ansible's ssh plugin: ansible_ssh_pass wins over ansible_password,
    # wherever each is set.
    assert inventory.host("h").password.reveal() == "fromhost"  # type: ignore[union-attr]


def test_a_password_file_given_in_the_environment_is_used_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = password_file(tmp_path, VAULT_PASSWORD)
    monkeypatch.setitem(os.environ, "ANSIBLE_VAULT_PASSWORD_FILE", str(path))
    text = inventory_with({"ansible_user": ONE_LINE_11})

    assert parse_inventory(text, "inv.yaml").host("h").user == "Setec Astronomy"


def test_collect_with_a_wrong_vault_password_exits_2_and_writes_nothing(
    tmp_path: Path,
) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(inventory_with({"ansible_user": ONE_LINE_11}))
    wrong = password_file(tmp_path, "hunter42")
    db = tmp_path / "f.db"

    result = CliRunner().invoke(
        main,
        [
            "collect",
            "-i",
            str(inv),
            "--db",
            str(db),
            "--vault-password-file",
            str(wrong),
        ],
    )

    assert result.exit_code == 2
    assert "host 'h': ansible_user: set in the vars of host 'h'" in result.output
    assert "wrong password" in result.output
    assert not db.exists()


def test_collect_reads_vaulted_values_with_a_vault_id(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(inventory_with({"fleetcompat_timeout": ONE_LINE_11}))
    right = password_file(tmp_path, VAULT_PASSWORD)

    result = CliRunner().invoke(
        main,
        [
            "collect",
            "-i",
            str(inv),
            "--db",
            str(tmp_path / "f.db"),
            "-o",
            "json",
            "--vault-id",
            f"ops@{right}",
        ],
    )

    # The setting decrypts to "Setec Astronomy", which is not a number of seconds:
    # proof it was opened with the labelled password and then read.
    assert result.exit_code == 2
    assert "fleetcompat_timeout: bad timeout 'Setec Astronomy'" in result.output


def test_audit_takes_the_vault_options_and_writes_nothing_on_a_wrong_password(
    tmp_path: Path,
) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(inventory_with({"fleetcompat_timeout": ONE_LINE_11}))
    layout = Path(__file__).parent.parent / "examples" / "oci-layout"
    args = ["audit", "-i", str(inv), "--oci-layout", str(layout)]
    args += ["--db", str(tmp_path / "f.db"), "--out", str(tmp_path / "report")]
    wrong = password_file(tmp_path, "hunter42", "wrong-pass")
    right = password_file(tmp_path, VAULT_PASSWORD, "right-pass")

    refused = CliRunner().invoke(main, [*args, "--vault-password-file", str(wrong)])
    opened = CliRunner().invoke(main, [*args, "--vault-id", f"ops@{right}"])

    assert refused.exit_code == 2
    assert "wrong password" in refused.output
    assert opened.exit_code == 2
    assert "fleetcompat_timeout: bad timeout 'Setec Astronomy'" in opened.output
    assert not (tmp_path / "f.db").exists()
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize("given", ["pw.sh", "./pw.sh"])
def test_a_script_named_relative_to_here_is_run_from_here(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str
) -> None:
    script(tmp_path, "pw.sh", f"echo '{VAULT_PASSWORD}'\n")
    monkeypatch.chdir(tmp_path)

    ring = Keyring.from_options(password_files=[given], environ={})

    assert ring.decrypt(Vaulted(ONE_LINE_11)) == "Setec Astronomy"


def test_a_slow_script_is_waited_for_with_a_warning_then_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import fleetcompat.vault as vault

    monkeypatch.setattr(vault, "SCRIPT_PATIENCE", 0.2)
    monkeypatch.setattr(vault, "SCRIPT_TIMEOUT", 1.5)
    slow = script(tmp_path, "slow.sh", f"sleep 0.6\necho '{VAULT_PASSWORD}'\n")
    stuck = script(tmp_path, "stuck.sh", "sleep 30\n")

    with caplog.at_level("WARNING", logger="fleetcompat"):
        opened = keyring(slow).decrypt(Vaulted(ONE_LINE_11))
    with pytest.raises(InventoryError, match="did not finish within 1.5s"):
        keyring(stuck).decrypt(Vaulted(ONE_LINE_11))

    assert opened == "Setec Astronomy"
    assert f"{slow}: waiting for the script" in caplog.text


def test_a_host_left_out_by_limit_runs_no_password_script(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    counting = script(
        tmp_path, "count.sh", f"echo run >> '{calls}'\necho '{VAULT_PASSWORD}'\n"
    )
    envelope = "".join("          " + line + "\n" for line in ONE_LINE_11.splitlines())
    text = (
        "all:\n  hosts:\n    plain:\n      ansible_connection: local\n"
        "    secret:\n      ansible_connection: local\n"
        "      ansible_user: !vault |\n" + envelope
    )

    inventory = parse_inventory(text, "inv.yaml", keyring(counting))
    inventory.select("plain")
    untouched = calls.exists()
    selected = inventory.select("secret")

    assert not untouched
    assert selected[0].user == "Setec Astronomy"
    assert calls.read_text() == "run\n"
