#!/usr/bin/env python3
"""HOST_IS_SLAVE and a master failover with the unchanged XenAPI.py client.

Driven by tests/pool/clients_test.go (TestXenAPIPyHostIsSlave).

Usage: xenapi_pool.py MEMBER_URL[,OTHER_URL...] USER PASSWORD

With os_xenapi.client.XenAPI (Debian python3-os-xenapi, XML-RPC):

1. login_with_password on a pool member (MEMBER_URL) raises
   Failure(['HOST_IS_SLAVE', address]); a new Session on http://address:PORT
   logs in. The script reads the pool members' addresses
   (host.get_all_records), writes a VM's name_description and takes an
   event.from token, prints "READY <master address> ..." and waits for a
   "KILLED" line on stdin (the Go test kill -9's the master in between).
2. A call on the old Session now fails at the transport level (a socket or
   HTTP error, not a XenAPI Failure). (If a loaded machine made the pool
   elect another master before the kill and the Go test killed that one,
   KILLED names it and the old Session's host answers HOST_IS_SLAVE.)
3. The script tries the other members' addresses with new Session objects
   that carry THE SAME session ref (XenAPI.py keeps it in Session._session;
   last_login_method stays None so XenAPI.py cannot silently log in again),
   following HOST_IS_SLAVE, until one answers as the master.
4. With the old session on the new master: a read returns the value written
   before the kill, a write works, and event.from from the token taken
   before the kill returns that write.

Prints "FAILED-OVER <address> <ms>" and finally "PASS ..."; on a failed
check "FAIL ..." and exits 1.
"""

import http.client
import socket
import sys
import time
import traceback
import xmlrpc.client
from urllib.parse import urlsplit

try:
    from os_xenapi.client import XenAPI
except ImportError as e:  # pragma: no cover
    sys.stderr.write("cannot import os_xenapi.client.XenAPI: %s\n" % e)
    sys.exit(3)

# XenAPI.py sets no timeout; a call to a member waits at most a few seconds
# for an election, so this only bounds a hung connection.
socket.setdefaulttimeout(10)

T0 = time.time()


def log(msg):
    print("# %.2fs %s" % (time.time() - T0, msg), flush=True)


def out(msg):
    print(msg, flush=True)


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def is_transport_error(e):
    """A failure to talk to the host, as opposed to an answer from it."""
    if isinstance(e, (XenAPI.Failure, xmlrpc.client.Fault)):
        return False
    return isinstance(e, (OSError, http.client.HTTPException, xmlrpc.client.ProtocolError))


def session_url(addr, port):
    return "http://%s:%d" % (addr, port)


def adopt(addr, port, ref, api_version):
    """A new XenAPI.py Session at addr that uses the existing session ref."""
    s = XenAPI.Session(session_url(addr, port))
    s._session = ref  # where XenAPI.Session keeps the session (its .handle)
    s.API_version = api_version
    return s


def find_master(addresses, dead, port, ref, api_version, budget):
    """Tries the pool members' addresses with the old session, following
    HOST_IS_SLAVE, until a host answers as the master. Returns (session,
    address, rounds)."""
    deadline = time.time() + budget
    rounds = 0
    order = [a for a in addresses if a != dead] + [a for a in addresses if a == dead]
    while time.time() < deadline:
        rounds += 1
        for addr in order:
            target = addr
            for _hop in range(2):  # the address tried, then where HOST_IS_SLAVE points
                s = adopt(target, port, ref, api_version)
                try:
                    s.xenapi.pool.get_all()
                    return s, target, rounds
                except XenAPI.Failure as f:
                    if f.details[0] == "HOST_IS_SLAVE" and len(f.details) > 1 and f.details[1] != target:
                        if rounds <= 3:
                            log("round %d: %s: HOST_IS_SLAVE %s" % (rounds, target, f.details[1]))
                        target = f.details[1]
                        continue
                    if f.details[0] in ("HOST_IS_SLAVE", "HOST_STILL_BOOTING"):
                        if rounds <= 3:
                            log("round %d: %s: %s" % (rounds, target, f.details))
                        break
                    raise
                except xmlrpc.client.Fault as f:
                    # XenAPI.py turns SESSION_INVALID into a re-login, and with
                    # no login on record into Fault(401, 'You must log in'):
                    # the session did not survive the failover
                    raise CheckFailed("%s answered %s for the old session" % (target, f))
                except Exception as e:  # noqa: BLE001 - a transport error, try the next address
                    if not is_transport_error(e):
                        raise
                    if rounds <= 3:
                        log("round %d: %s: %s: %s" % (rounds, target, type(e).__name__, e))
                    break
        time.sleep(0.1)
    raise CheckFailed("no pool member answered as the master within %.0f s (tried %s)" % (budget, order))


def main():
    urls, user, password = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    port = urlsplit(urls[0]).port or 80
    step = "start"
    try:
        # The first URL is a member's; on a loaded machine the pool may elect
        # another master meanwhile, so each URL is tried until a login raises
        # HOST_IS_SLAVE and the address it names accepts the login.
        step = "login on a member raises HOST_IS_SLAVE, login at the address it names"
        deadline = time.time() + 20
        s = None
        while s is None:
            for member_url in urls:
                try:
                    m = XenAPI.Session(member_url)
                    m.xenapi.login_with_password(user, password, "2.20", "xenapi_pool.py")
                    log("login on %s succeeded: it is the master now" % member_url)
                    m.xenapi.session.logout()
                    continue
                except XenAPI.Failure as f:
                    check(f.details[0] == "HOST_IS_SLAVE" and len(f.details) == 2,
                          "login on the member: %s, want ['HOST_IS_SLAVE', address]" % f.details)
                    master = f.details[1]
                log("login on %s: HOST_IS_SLAVE %s" % (member_url, master))
                try:
                    s = XenAPI.Session(session_url(master, port))
                    s.xenapi.login_with_password(user, password, "2.20", "xenapi_pool.py")
                    break
                except XenAPI.Failure as f:
                    log("login at %s: %s" % (master, f.details))
                    s = None
            check(s is not None or time.time() < deadline, "no login through %s within 20 s" % urls)
            if s is None:
                time.sleep(0.2)
        x = s.xenapi
        ref = s._session
        check(isinstance(ref, str) and ref.startswith("OpaqueRef:"), "session ref %r" % ref)
        check(s.handle == ref, "Session.handle %r != Session._session %r" % (s.handle, ref))
        api_version = s.API_version

        step = "read the pool members' addresses"
        hosts = x.host.get_all_records()
        addresses = sorted(h["address"] for h in hosts.values())
        check(master in addresses, "master %s not among the hosts' addresses %s" % (master, addresses))
        check(len(addresses) >= 3, "%d hosts" % len(addresses))

        step = "a write and an event token before the kill"
        vms = x.VM.get_all_records()
        vm = sorted(r for r, v in vms.items() if v["is_a_template"] and not v["is_control_domain"])[0]
        before = "py-before-kill-%d" % int(time.time() * 1000)
        x.VM.set_name_description(vm, before)
        check(x.VM.get_name_description(vm) == before, "read back before the kill")
        token = getattr(x.event, "from")(["VM"], "", 0.1)["token"]
        check(isinstance(token, str) and token != "", "event.from token %r" % token)
        log("logged in at %s, session %s..., hosts %s, token %s" % (master, ref[:20], addresses, token))
        out("READY %s %s" % (master, " ".join(addresses)))

        step = "wait for KILLED"
        line = sys.stdin.readline().split()
        check(len(line) == 2 and line[0] == "KILLED", "stdin: %r, want KILLED <address>" % line)
        killed_addr, killed = line[1], time.time()

        if killed_addr == master:
            step = "a call on the old Session fails at the transport level"
            try:
                x.pool.get_all()
                raise CheckFailed("pool.get_all on the killed master %s answered" % master)
            except CheckFailed:
                raise
            except Exception as e:  # noqa: BLE001
                check(is_transport_error(e), "pool.get_all on the killed master: %r, want a transport error" % e)
                log("old Session on %s: %s: %s" % (master, type(e).__name__, e))
        else:
            # the pool elected another master before the kill (a loaded
            # machine): the host this Session talks to is a member now
            step = "a call on the old Session answers HOST_IS_SLAVE"
            try:
                x.pool.get_all()
                raise CheckFailed("pool.get_all on %s (no longer master) answered" % master)
            except XenAPI.Failure as f:
                check(f.details[0] == "HOST_IS_SLAVE", "pool.get_all on %s: %s" % (master, f.details))
            log("NOTE: %s killed, not %s (the master changed before the kill)" % (killed_addr, master))

        step = "find the new master with the same session"
        s2, new_master, rounds = find_master(addresses, killed_addr, port, ref, api_version, 30.0)
        check(new_master != killed_addr, "the killed host %s answered as the master" % killed_addr)
        check(s2.handle == ref, "session changed: %r" % s2.handle)
        ms = int((time.time() - killed) * 1000)
        log("master is %s now (%d rounds, %d ms after KILLED)" % (new_master, rounds, ms))
        out("FAILED-OVER %s %d" % (new_master, ms))
        current = {"session": s2, "address": new_master}

        def on_master(fn):
            """fn(xenapi) on the master; if the pool elects another master
            meanwhile (a loaded machine), finds it again, same session."""
            for attempt in range(3):
                try:
                    return fn(current["session"].xenapi)
                except XenAPI.Failure as f:
                    if f.details[0] != "HOST_IS_SLAVE" or attempt == 2:
                        raise
                    log("NOTE: %s answered %s: finding the master again" % (current["address"], f.details))
                    current["session"], current["address"], _ = find_master(
                        addresses, killed_addr, port, ref, api_version, 15.0)

        step = "a read with the old session on the new master"
        got = on_master(lambda y: y.VM.get_name_description(vm))
        check(got == before, "VM.get_name_description: %r, want %r (written before the kill)" % (got, before))

        step = "a write with the old session on the new master"
        after = "py-after-failover-%d" % int(time.time() * 1000)
        on_master(lambda y: y.VM.set_name_description(vm, after))
        got = on_master(lambda y: y.VM.get_name_description(vm))
        check(got == after, "read back after the write: %r, want %r" % (got, after))

        step = "event.from from the token taken before the kill"
        deadline = time.time() + 10
        tok, seen, calls = token, [], 0
        while True:
            calls += 1
            r = on_master(lambda y: getattr(y.event, "from")(["VM"], tok, 2.0))
            tok = r["token"]
            evs = [e for e in r["events"] if e["ref"] == vm]
            seen += [e.get("snapshot", {}).get("name_description") for e in evs]
            if after in seen:
                break
            check(time.time() < deadline,
                  "event.from(%s) did not return the write %r in 10 s (VM events: %s)" % (token, after, seen))
        y = current["session"].xenapi
        check(y.session.get_uuid(ref) != "", "session.get_uuid")
        out("PASS master %s -> %s, same session, event.from from the old token returned the write "
            "(%d calls, %d events for the VM)" % (master, new_master, calls, len(seen)))
        return 0
    except CheckFailed as e:
        out("FAIL %s: %s" % (step, e))
    except Exception:  # noqa: BLE001
        out("FAIL %s: %s" % (step, traceback.format_exc()))
    return 1


if __name__ == "__main__":
    sys.exit(main())
