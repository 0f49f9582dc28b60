#!/usr/bin/env python3
"""Tasks and events of xapid with the unchanged XenAPI.py client.

Usage: xenapi_events.py URL USER PASSWORD

Checks, over XML-RPC with os_xenapi.client.XenAPI (Debian python3-os-xenapi):
an Async.* call returns a task that is polled with task.get_record until it
succeeds, with the result as an XML-RPC value; a failing Async call ends as a
failed task with error_info; the legacy event.register / event.next loop
delivers a change made by another session; event.from with a token delivers
exactly the changes made since. Exits non-zero naming the failed check.
"""

import sys
import time
import traceback

try:
    from os_xenapi.client import XenAPI
except ImportError as e:  # pragma: no cover
    sys.stderr.write("cannot import os_xenapi.client.XenAPI: %s\n" % e)
    sys.exit(3)


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def ok(name, detail=""):
    print("ok   %s%s" % (name, " - " + detail if detail else ""))


def wait_task(x, task, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rec = x.task.get_record(task)
        if rec["status"] not in ("pending", "cancelling"):
            return rec
        time.sleep(0.02)
    raise CheckFailed("task %s did not finish" % task)


def main():
    url, user, password = sys.argv[1:4]
    s = XenAPI.Session(url)
    s.xenapi.login_with_password(user, password, "2.20", "xenapi_events.py")
    other = XenAPI.Session(url)
    other.xenapi.login_with_password(user, password, "2.20", "xenapi_events.py-writer")
    x, w = s.xenapi, other.xenapi
    step = "start"
    try:
        step = "Async call polled to success"
        rec = {"name_label": "py-async-net", "name_description": "", "other_config": {}, "MTU": "1500", "tags": []}
        task = x.Async.network.create(rec)
        check(task.startswith("OpaqueRef:"), "Async.network.create returned %r" % task)
        t = wait_task(x, task)
        check(t["status"] == "success", "task status %r, error_info %r" % (t["status"], t["error_info"]))
        check(t["result"].startswith("<value>OpaqueRef:") and t["result"].endswith("</value>"), "task result %r" % t["result"])
        net = t["result"][len("<value>"):-len("</value>")]
        check(x.network.get_name_label(net) == "py-async-net", "created network not found")
        check(t["progress"] == 1.0, "progress %r" % t["progress"])
        check(str(t["finished"]) >= str(t["created"]), "finished %r before created %r" % (t["finished"], t["created"]))
        x.task.destroy(task)
        ok(step, net)

        step = "Async failure ends the task with error_info"
        task = x.Async.network.destroy("OpaqueRef:no-such-network")
        t = wait_task(x, task)
        check(t["status"] == "failure", "status %r" % t["status"])
        check(t["error_info"][:2] == ["HANDLE_INVALID", "network"], "error_info %r" % t["error_info"])
        x.task.destroy(task)
        ok(step)

        step = "event.register / event.next"
        x.event.register(["network"])
        w.network.set_name_label(net, "renamed-by-other")
        seen = None
        deadline = time.time() + 10
        while seen is None and time.time() < deadline:
            for ev in x.event.next():
                if ev["class"] == "network" and ev["ref"] == net and ev["operation"] == "mod":
                    seen = ev
        check(seen is not None, "no mod event for the network")
        check(seen["snapshot"]["name_label"] == "renamed-by-other", "snapshot %r" % seen.get("snapshot"))
        x.event.unregister(["network"])
        ok(step)

        step = "event.from with a token"
        event_from = getattr(x.event, "from")  # "from" is a Python keyword
        batch = event_from(["network"], "", 0.0)
        token = batch["token"]
        check(any(e["ref"] == net and e["operation"] == "add" for e in batch["events"]), "initial add missing")
        w.network.add_to_other_config(net, "k", "v")
        w.network.destroy(net)
        got = []
        deadline = time.time() + 10
        while time.time() < deadline:
            batch = event_from(["network"], token, 5.0)
            token = batch["token"]
            got += [e for e in batch["events"] if e["ref"] == net]
            if any(e["operation"] == "del" for e in got):
                break
        check(got and got[-1]["operation"] == "del" and "snapshot" not in got[-1], "events %r" % got)
        ok(step, "%d event(s)" % len(got))
        print("XenAPI.py tasks and events: all checks passed")
    except (CheckFailed, XenAPI.Failure) as e:
        sys.stderr.write("FAIL %s: %s\n" % (step, e))
        return 1
    except Exception:
        sys.stderr.write("FAIL %s:\n%s" % (step, traceback.format_exc()))
        return 1
    finally:
        for sess in (s, other):
            try:
                sess.xenapi.session.logout()
            except Exception:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
