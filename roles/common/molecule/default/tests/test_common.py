"""Verify the common role on a real systemd-nspawn host."""


def test_base_packages_installed(host):
    for name in ("chrony", "jq", "curl", "sudo", "tzdata", "python3-apt"):
        assert host.package(name).is_installed, name


def test_time_zone(host):
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/Europe/Berlin"
    assert host.file("/etc/timezone").content_string.strip() == "Europe/Berlin"
    assert host.check_output("date +%Z") in ("CET", "CEST")


def test_chrony_runs_and_answers(host):
    chrony = host.service("chrony")
    assert chrony.is_enabled
    assert chrony.is_running
    sources = host.check_output("chronyc -n sources")
    assert "10.213.0.1" in sources
    assert host.run("chronyc -n tracking").rc == 0


def test_chrony_leaves_the_clock_alone_without_cap_sys_time(host):
    capbnd = int(host.check_output("awk '/^CapBnd/ {print $2}' /proc/1/status"), 16)
    has_sys_time = bool(capbnd >> 25 & 1)
    options = host.file("/etc/default/chrony").content_string
    assert ("-x" in options) is (not has_sys_time)
    cmdline = host.check_output("cat /proc/$(pidof chronyd | cut -d' ' -f1)/cmdline | tr '\\0' ' '")
    assert ("-x" in cmdline.split()) is (not has_sys_time)


def test_admin_user_with_key_and_sudo(host):
    user = host.user("pilotadmin")
    assert user.exists and user.shell == "/bin/bash"
    keys = host.file("/home/pilotadmin/.ssh/authorized_keys")
    assert keys.user == "pilotadmin" and keys.mode == 0o600
    assert "pilot-test" in keys.content_string
    assert host.run("sudo -n -u pilotadmin sudo -n true").rc == 0
    shadow = host.check_output("getent shadow pilotadmin").split(":")[1]
    assert shadow.startswith("!"), "password login must stay locked"


def test_user_without_sudo(host):
    assert "adm" in host.user("pilotviewer").groups
    assert not host.file("/etc/sudoers.d/60-pilotviewer").exists
    assert host.run("sudo -n -u pilotviewer sudo -n true").rc != 0


def test_absent_user_is_absent(host):
    assert not host.user("pilotgone").exists
