"""The scheduling examples under configs/ work as written: each is checked by the tool that reads it
where that tool is installed (systemd-analyze, logrotate, rsyslogd), parsed otherwise, and its
hostlogs command lines are run against a temporary store with only the installation paths replaced.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.cli._common import COMMAND_MODULES
from pipeline.store.commit import Store
from tests.conftest import ROOT, store_rows

CONFIGS = ROOT / "configs"
BIN = Path(sys.executable).parent / "hostlogs"
USER = pwd.getpwuid(os.geteuid()).pw_name
GROUP = grp.getgrgid(os.getegid()).gr_name


# ----------------------------------------------------------------------------------------------------
# a server in a temporary directory: the reference config with its paths moved there, and logs


def clf_time(minutes_ago: int = 60) -> str:
    return (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)).strftime("%d/%b/%Y:%H:%M:%S +0000")


def vhost_lines(n: int, tag: str = "a") -> str:
    return "".join(
        f'www.example.com:443 192.0.2.{i % 250 + 1} - - [{clf_time()}] "GET /{tag}{i} HTTP/1.1" 200 12 "-" "curl/8.0"\n'
        for i in range(n)
    )


class Server:
    """configs/hostlogs.toml installed under ``root``: /var/lib/hostlogs, /var/log/apache2 and
    /var/www/vhosts moved there, a few lines in each configured source."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.moves = {
            "/var/lib/hostlogs": root / "var-lib-hostlogs",
            "/var/log/apache2": root / "var-log-apache2",
            "/var/www/vhosts": root / "vhosts",
        }
        text = (CONFIGS / "hostlogs.toml").read_text()
        for old, new in self.moves.items():
            text = text.replace(old, str(new))
        self.config = root / "hostlogs.toml"
        self.config.write_text(text)
        data = tomllib.loads(text)
        self.store = Path(data["store"])
        self.key_dir = Path(data["privacy"]["key_dir"])
        self.logs = self.moves["/var/log/apache2"]
        self.logs.mkdir(parents=True)
        self.first_lines = vhost_lines(5)
        (self.logs / "other_vhosts_access.log").write_text(self.first_lines)
        vhost = self.moves["/var/www/vhosts"] / "example.org" / "logs"
        vhost.mkdir(parents=True)
        (vhost / "access_log").write_text(
            f'198.51.100.7 - - [{clf_time()}] "GET / HTTP/1.1" 200 5 "-" "curl/8.0"\n' * 2
        )

    def localize(self, command: str) -> str:
        """An installed command line, with this server's paths and the current user."""
        command = command.replace("/usr/local/bin/hostlogs", str(BIN))
        command = command.replace("/etc/hostlogs/hostlogs.toml", str(self.config))
        command = command.replace("--reuid=hostlogs --regid=hostlogs", f"--reuid={USER} --regid={GROUP}")
        command = command.replace("runuser -u hostlogs", f"runuser -u {USER}")
        for old, new in self.moves.items():
            command = command.replace(old, str(new))
        return command

    def rows(self) -> list[dict[str, object]]:
        return store_rows(self.store)


@pytest.fixture()
def server(tmp_path: Path) -> Server:
    return Server(tmp_path)


def run_sh(command: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    """``command`` as cron and logrotate run it: /bin/sh, with the venv's hostlogs first on PATH."""
    env = {**os.environ, "PATH": f"{BIN.parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        ["/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=120, **kwargs
    )


def invoke(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output


# ----------------------------------------------------------------------------------------------------
# systemd


def unit_entries(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A unit file as {section: [(key, value), ...]}: keys repeat (ExecStart=, ReadWritePaths=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if m := re.fullmatch(r"\[([A-Za-z]+)\]", line):
            current = sections.setdefault(m.group(1), [])
            continue
        key, sep, value = line.partition("=")
        assert current is not None and sep, f"{path.name}: {raw!r} is not KEY=VALUE inside a section"
        current.append((key.strip(), value.strip()))
    return sections


def values(entries: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in entries if k == key]


SERVICES = sorted((CONFIGS / "systemd").glob("*.service"))
TIMERS = sorted((CONFIGS / "systemd").glob("*.timer"))


def test_systemd_units_pass_systemd_analyze_verify_where_installed(server: Server) -> None:
    """Units with only the binary's path replaced verify without a warning (unknown keys are only
    warnings, so stderr must be empty). Without systemd-analyze the parse below still runs."""
    assert (
        {p.stem for p in SERVICES} == {p.stem for p in TIMERS} == {"hostlogs-ingest", "hostlogs-maintenance"}
    )
    copies = server.root / "units"
    copies.mkdir()
    for unit in [*SERVICES, *TIMERS]:
        (copies / unit.name).write_text(unit.read_text().replace("/usr/local/bin/hostlogs", str(BIN)))
        assert unit_entries(unit)  # parses everywhere
    if shutil.which("systemd-analyze"):
        done = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in copies.iterdir())],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stderr) == (0, "")


@pytest.mark.parametrize("unit", SERVICES, ids=lambda p: p.name)
def test_systemd_service_is_hardened_and_writes_only_the_store_and_keys(unit: Path) -> None:
    service = unit_entries(unit)["Service"]
    settings = dict(service)
    for key, value in {
        "Type": "oneshot",
        "User": "hostlogs",
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert settings.get(key) == value, f"{unit.name}: {key}={settings.get(key)}"
    reference = tomllib.loads((CONFIGS / "hostlogs.toml").read_text())
    writable = {p for v in values(service, "ReadWritePaths") for p in v.split()}
    required = {p.lstrip("-") for p in writable if not p.startswith("-")}
    assert required == {reference["store"], reference["privacy"]["key_dir"]}
    for command in values(service, "ExecStart"):
        assert (
            command.startswith("/usr/local/bin/hostlogs ")
            and "--config /etc/hostlogs/hostlogs.toml" in command
        )


@pytest.mark.parametrize("timer", TIMERS, ids=lambda p: p.name)
def test_systemd_timer_starts_its_service_and_is_installable(timer: Path) -> None:
    entries = unit_entries(timer)
    assert values(entries["Timer"], "Unit") == [timer.with_suffix(".service").name]
    assert values(entries["Timer"], "OnCalendar") and values(entries["Install"], "WantedBy") == [
        "timers.target"
    ]


def test_systemd_exec_lines_run_against_the_reference_config(server: Server) -> None:
    """What systemd would run (no shell: the words of ExecStart=), in unit order, succeeds."""
    for unit in SERVICES:
        for command in values(unit_entries(unit)["Service"], "ExecStart"):
            args = shlex.split(server.localize(command))
            code, out = invoke(args[1:])
            assert code == 0, f"{unit.name}: {command}: {out}"
    assert len(server.rows()) == 7


# ----------------------------------------------------------------------------------------------------
# cron

CRON_FIELD = re.compile(r"\*|\*/[0-9]+|[0-9]+(?:-[0-9]+)?(?:/[0-9]+)?(?:,[0-9]+(?:-[0-9]+)?)*")
CRON_RANGES = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]


def cron_jobs() -> list[tuple[list[str], str, str]]:
    """(time fields, user, command) of each job in configs/cron.d/hostlogs; checks the syntax."""
    jobs = []
    for line in (CONFIGS / "cron.d" / "hostlogs").read_text().splitlines():
        if not line.strip() or line.startswith("#") or re.fullmatch(r"[A-Z]+=\S+", line):
            continue
        fields = line.split(None, 6)
        assert len(fields) == 7, f"not 5 time fields, a user and a command: {line!r}"
        for field, (low, high) in zip(fields[:5], CRON_RANGES, strict=True):
            assert CRON_FIELD.fullmatch(field), field
            numbers = [int(n) for n in re.findall(r"[0-9]+", field.split("/")[0])]
            assert all(low <= n <= high for n in numbers), field
        assert "%" not in fields[6]  # cron turns % into a newline
        jobs.append((fields[:5], fields[5], fields[6]))
    return jobs


def test_cron_file_runs_ingest_every_five_minutes_and_maintenance_daily(server: Server) -> None:
    jobs = cron_jobs()
    assert [(t, user, cmd.split("hostlogs ", 2)[-1].split()[0]) for t, user, cmd in jobs] == [
        (["*/5", "*", "*", "*", "*"], "hostlogs", "ingest"),
        (["17", "3", "*", "*", "*"], "hostlogs", "purge"),
        (["47", "3", "*", "*", "*"], "hostlogs", "compact"),
    ]
    ingest, *maintenance = (server.localize(command) for _, _, command in jobs)
    done = run_sh(ingest)  # as cron runs it: nothing printed, so no mail
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert len(server.rows()) == 7
    for command in maintenance:  # a plain command line: --quiet prints nothing on success (no mail)
        words = shlex.split(command)
        assert words[0] == "hostlogs" and "--quiet" in words, command
        result = CliRunner().invoke(main, words[1:])
        assert (result.exit_code, result.stdout, result.stderr) == (0, "", ""), command
    assert len(server.rows()) == 7


def test_cron_ingest_is_quiet_when_another_run_holds_the_lock_and_mails_other_errors(server: Server) -> None:
    command = server.localize(cron_jobs()[0][2]).replace("--wait 240", "--wait 0")
    with Store(server.store).lock():  # an ingest still running from the last tick
        done = run_sh(command)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert not server.rows()  # it did nothing
    (server.logs / "other_vhosts_access.log").unlink()
    (server.moves["/var/www/vhosts"] / "example.org" / "logs" / "access_log").unlink()
    done = run_sh(command)  # collection has stopped: that is mailed
    assert done.stdout.startswith("hostlogs: error:") and "other_vhosts_access.log" in done.stdout


# ----------------------------------------------------------------------------------------------------
# logrotate


def logrotate_config(server: Server) -> Path:
    conf = server.root / "logrotate.conf"
    conf.write_text(server.localize((CONFIGS / "logrotate.d" / "apache2-hostlogs").read_text()))
    return conf


def test_logrotate_snippet_parses(server: Server) -> None:
    text = (CONFIGS / "logrotate.d" / "apache2-hostlogs").read_text()
    body = re.search(r"^/var/log/apache2/\*\.log \{\n(.*)^\}", text, re.M | re.S)
    assert body is not None
    directives = {
        line.split()[0]
        for line in body.group(1).splitlines()
        if line.strip() and not line.strip().startswith("#")
    }
    assert {"delaycompress", "compress", "sharedscripts", "prerotate", "postrotate", "create"} <= directives
    assert "copytruncate" not in directives
    if shutil.which("logrotate"):
        done = subprocess.run(
            ["logrotate", "-d", "-s", str(server.root / "state"), str(logrotate_config(server))],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0 and "error:" not in done.stderr, done.stderr


def prerotate_script(conf: Path) -> str:
    match = re.search(r"prerotate\n(.*?)\n\s*endscript", conf.read_text(), re.S)
    assert match is not None
    return match.group(1)


def test_logrotate_prerotate_commits_the_tail_and_the_rotated_file_is_read_on(server: Server) -> None:
    """Rotate for real (logrotate -f) where installed, else the same steps by hand: the prerotate
    ingest stores every line before the rename; the next run reads the new file only."""
    conf = logrotate_config(server)
    live = server.logs / "other_vhosts_access.log"
    if shutil.which("logrotate"):
        done = subprocess.run(
            ["logrotate", "-f", "-s", str(server.root / "state"), str(conf)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
    else:
        assert run_sh(prerotate_script(conf)).returncode == 0
        live.rename(live.with_name(live.name + ".1"))
        live.touch()
    assert len(server.rows()) == 7  # committed by the prerotate script
    assert live.with_name(live.name + ".1").read_text() == server.first_lines and live.read_text() == ""
    with live.open("a") as f:
        f.write(vhost_lines(3, tag="b"))
    code, out = invoke(["ingest", "--config", str(server.config), "--quiet"])
    assert (code, out) == (0, "")
    paths = sorted(str(r["path"]) for r in server.rows())
    assert paths == sorted(["/", "/", *(f"/a{i}" for i in range(5)), *(f"/b{i}" for i in range(3))])


# ----------------------------------------------------------------------------------------------------
# piped logs: Apache's CustomLog "|…", nginx → rsyslog → hostlogs


def apache_pipe_command() -> tuple[str, str]:
    """The command of configs/apache/hostlogs-piped.conf's CustomLog and its log format name."""
    lines = [
        line
        for line in (CONFIGS / "apache" / "hostlogs-piped.conf").read_text().splitlines()
        if line.startswith("CustomLog")
    ]
    assert len(lines) == 1
    _, target, log_format = shlex.split(lines[0])
    assert target.startswith("|") and not target.startswith("|$")  # run directly, no shell
    return target[1:], log_format


def test_apache_piped_logger_stores_what_apache_writes_into_it(server: Server) -> None:
    command, log_format = apache_pipe_command()
    assert f"--format {log_format}" in command  # the line Apache writes is the one hostlogs parses
    args = shlex.split(server.localize(command))
    if os.geteuid() != 0:  # setpriv needs root, as Apache's parent process is
        args = args[args.index(str(BIN)) :]
    done = subprocess.run(args, input=vhost_lines(4), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert sorted(str(r["path"]) for r in server.rows()) == [f"/a{i}" for i in range(4)]
    (writer,) = (server.store / "_manifests").iterdir()  # a writer of its own, beside cron's "files"
    assert re.fullmatch(r"pipe-[0-9]+", writer.name)
    assert all(str(r["client_net"]) == "192.0.2.0/24" for r in server.rows())


def nginx_lines(n: int) -> list[str]:
    """Lines as nginx writes them with configs/nginx/hostlogs.conf's log_format."""
    text = (CONFIGS / "nginx" / "hostlogs.conf").read_text()
    match = re.search(r"log_format hostlogs_vhost ((?:\s*'[^']*')+);", text)
    assert match is not None and "access_log syslog:server=unix:/run/hostlogs/nginx.sock" in text
    template = "".join(re.findall(r"'([^']*)'", match.group(1)))
    lines = []
    for i in range(n):
        value: dict[str, str] = {
            "host": "shop.example.com", "server_port": "443", "remote_addr": f"2001:db8:1:2::{i + 1}",
            "remote_user": "-", "time_local": clf_time(), "request": f"GET /n{i} HTTP/2.0", "status": "200",
            "body_bytes_sent": "512", "http_referer": "-", "http_user_agent": "Mozilla/5.0",
        }  # fmt: skip
        lines.append(re.sub(r"\$([a-z_]+)", lambda m, values=value: values[m.group(1)], template))
    return lines


def rsyslog_binary() -> str:
    text = (CONFIGS / "nginx" / "rsyslog-hostlogs.conf").read_text()
    match = re.search(r'binary="([^"]+)"', text)
    assert match is not None and 'template="RSYSLOG_FileFormat"' in text
    return match.group(1)


def check_nginx_rows(server: Server, n: int) -> None:
    rows = server.rows()
    assert sorted(str(r["path"]) for r in rows) == [f"/n{i}" for i in range(n)]
    assert {(r["domain"], r["client_net"]) for r in rows} == {("shop.example.com", "2001:db8:1::/48")}


def test_nginx_lines_through_rsyslog_format_are_stored(server: Server) -> None:
    """The omprog command gets RSYSLOG_FileFormat lines: header, then nginx's line."""
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    piped = "".join(f"{stamp} web-01 nginx: {line}\n" for line in nginx_lines(3))
    args = shlex.split(server.localize(rsyslog_binary()))
    if os.geteuid() != 0:
        args = args[args.index(str(BIN)) :]
    done = subprocess.run(args, input=piped, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    check_nginx_rows(server, 3)


def test_nginx_to_rsyslog_to_hostlogs_end_to_end_where_rsyslogd_is_installed(server: Server) -> None:
    """Where rsyslogd is installed: the rsyslog file as written (paths moved), the datagrams nginx
    sends with `syslog:…,nohostname`, and the rows in the store. Elsewhere: the config is parsed."""
    text = (CONFIGS / "nginx" / "rsyslog-hostlogs.conf").read_text()
    assert re.search(r'input\(type="imuxsock" socket="/run/hostlogs/nginx.sock"', text)
    if not shutil.which("rsyslogd"):
        return
    sock = server.root / "nginx.sock"
    conf = server.root / "rsyslog-hostlogs.conf"
    # commit after the 3 lines instead of after 30 s, so that the test waits for the commit only
    text = text.replace("--format syslog:vhost_combined", "--format syslog:vhost_combined --flush-lines 3")
    conf.write_text(server.localize(text).replace("/run/hostlogs/nginx.sock", str(sock)))
    main_conf = server.root / "rsyslog.conf"
    main_conf.write_text(
        f'global(workDirectory="{server.root}")\nmodule(load="imuxsock" sysSock.use="off")\ninclude(file="{conf}")\n'
    )
    check = subprocess.run(
        ["rsyslogd", "-N1", "-f", str(main_conf)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stderr
    with subprocess.Popen(
        ["rsyslogd", "-n", "-f", str(main_conf), "-i", str(server.root / "rsyslogd.pid")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    ) as daemon:
        deliver_as_nginx(server, sock, daemon)
    check_nginx_rows(server, 3)


def deliver_as_nginx(server: Server, sock: Path, daemon: subprocess.Popen[bytes]) -> None:
    """Send three lines as nginx does, wait for their commit, stop rsyslogd (it closes the pipe)."""
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for line in nginx_lines(3):  # what nginx sends: <PRI>TIMESTAMP TAG: MESSAGE, no newline
            client.sendto(f"<190>{dt.datetime.now():%b %e %H:%M:%S} nginx: {line}".encode(), str(sock))
        client.close()
        while not (server.store / "_manifests").exists() and time.monotonic() < deadline + 20:
            time.sleep(0.05)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)


# ----------------------------------------------------------------------------------------------------
# the reference config


def test_reference_config_is_accepted_by_config_check(server: Server) -> None:
    if "config" in COMMAND_MODULES:
        code, out = invoke(["config", "check", "--config", str(server.config)])
        assert code == 0, out
    else:
        from pipeline import config

        assert config.load(server.config).store == str(server.store)
