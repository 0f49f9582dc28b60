#!/usr/bin/env python3
"""A VM's life cycle on xapid with the unchanged XenAPI.py client.

Usage: xenapi_vm.py URL USER PASSWORD

Over XML-RPC with os_xenapi.client.XenAPI (Debian python3-os-xenapi): a VM
made from a template (VM.clone, VM.provision, VM.set_is_a_template False,
VIF.create) is started with Async.VM.start (its task polled with
task.get_record), gets its guest metrics (OS version, the VIF's addresses)
from the simulated guest agent, and goes through clean_reboot, suspend, resume
and clean_shutdown before VM.destroy, which takes its VIF with it. The VM's
record is checked after every step, and so are the exact error parameters of
power operations in the wrong state. Exits non-zero naming the failed check.

The server's simulated hypervisor takes realistic times (seconds), so the
waits below are generous.
"""

import sys
import time
import traceback

try:
    from os_xenapi.client import XenAPI
except ImportError as e:  # pragma: no cover
    sys.stderr.write("cannot import os_xenapi.client.XenAPI: %s\n" % e)
    sys.exit(3)

NULL = "OpaqueRef:NULL"
TIMEOUT = 30.0


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def ok(name, detail=""):
    print("ok   %s%s" % (name, " - " + detail if detail else ""))


def wait_task(x, task, timeout=TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        rec = x.task.get_record(task)
        if rec["status"] not in ("pending", "cancelling"):
            return rec
        time.sleep(0.05)
    raise CheckFailed("task %s did not finish within %.0f s" % (task, timeout))


def failure_of(fn, *args):
    """Calls fn and returns the details of the XenAPI.Failure it raises."""
    try:
        fn(*args)
    except XenAPI.Failure as e:
        return e.details
    raise CheckFailed("call succeeded; a failure was expected")


def find_template(x):
    templates = {}
    for ref, rec in x.VM.get_all_records().items():
        if rec["is_a_template"] and not rec["is_control_domain"]:
            templates[rec["name_label"]] = ref
    check(templates, "no templates")
    return templates.get("Debian Bookworm 12") or templates[sorted(templates)[0]]


def check_running(x, vm, host, step):
    rec = x.VM.get_record(vm)
    check(rec["power_state"] == "Running", "%s: power_state %r" % (step, rec["power_state"]))
    check(rec["resident_on"] == host, "%s: resident_on %r, host %r" % (step, rec["resident_on"], host))
    domid = int(rec["domid"])
    check(domid > 0, "%s: domid %r" % (step, rec["domid"]))
    ops = rec["allowed_operations"]
    check("clean_shutdown" in ops and "start" not in ops, "%s: allowed_operations %r" % (step, ops))
    check(rec["current_operations"] == {}, "%s: current_operations %r" % (step, rec["current_operations"]))
    return rec


def check_stopped(x, vm, state, step):
    rec = x.VM.get_record(vm)
    check(rec["power_state"] == state, "%s: power_state %r, want %r" % (step, rec["power_state"], state))
    check(rec["resident_on"] == NULL, "%s: resident_on %r" % (step, rec["resident_on"]))
    check(int(rec["domid"]) == -1, "%s: domid %r" % (step, rec["domid"]))
    check(rec["current_operations"] == {}, "%s: current_operations %r" % (step, rec["current_operations"]))
    return rec


def main():
    url, user, password = sys.argv[1:4]
    s = XenAPI.Session(url)
    s.xenapi.login_with_password(user, password, "2.20", "xenapi_vm.py")
    x = s.xenapi
    vm = vif = None
    step = "start"
    try:
        step = "find a template"
        tmpl = find_template(x)
        host = x.host.get_all()[0]
        ok(step, x.VM.get_name_label(tmpl))

        step = "VM.clone, VM.provision, VM.set_is_a_template False"
        vm = x.VM.clone(tmpl, "xenapi_vm.py guest")
        check(vm.startswith("OpaqueRef:") and vm != tmpl, "VM.clone returned %r" % vm)
        x.VM.provision(vm)
        x.VM.set_is_a_template(vm, False)
        rec = x.VM.get_record(vm)
        check(rec["is_a_template"] is False, "is_a_template %r" % rec["is_a_template"])
        check(rec["power_state"] == "Halted", "power_state %r" % rec["power_state"])
        check(rec["name_label"] == "xenapi_vm.py guest", "name_label %r" % rec["name_label"])
        check("disks" not in rec["other_config"], "other_config:disks kept after provision")
        disks = [b for b in rec["VBDs"] if x.VBD.get_type(b) == "Disk"]
        check(disks, "no disk VBDs after provision: %r" % rec["VBDs"])
        ok(step, "%s, %d disk(s)" % (vm, len(disks)))

        step = "VIF.create on the host's network"
        nets = [n for n, r in x.network.get_all_records().items() if r["PIFs"]]
        check(nets, "no network with a PIF")
        vif = x.VIF.create({
            "device": "0", "network": nets[0], "VM": vm, "MAC": "", "MTU": "1500",
            "other_config": {}, "qos_algorithm_type": "", "qos_algorithm_params": {},
        })
        check(x.VM.get_VIFs(vm) == [vif], "VM.VIFs %r, created %r" % (x.VM.get_VIFs(vm), vif))
        ok(step, vif)

        step = "Async.VM.start polled to success"
        task = x.Async.VM.start(vm, False, False)
        check(task.startswith("OpaqueRef:"), "Async.VM.start returned %r" % task)
        t = wait_task(x, task)
        check(t["status"] == "success", "task status %r, error_info %r" % (t["status"], t["error_info"]))
        check(float(t["progress"]) == 1.0, "task progress %r" % t["progress"])
        x.task.destroy(task)
        rec = check_running(x, vm, host, step)
        ok(step, "domid %s" % rec["domid"])

        step = "VM.start of a running VM"
        details = failure_of(x.VM.start, vm, False, False)
        want = ["VM_BAD_POWER_STATE", vm, "halted", "running"]
        check(details == want, "error %r, want %r" % (details, want))
        ok(step, " ".join(details))

        step = "guest metrics from the guest agent"
        deadline = time.time() + TIMEOUT
        gm = x.VM.get_guest_metrics(vm)
        while gm == NULL and time.time() < deadline:
            time.sleep(0.1)
            gm = x.VM.get_guest_metrics(vm)
        check(gm != NULL, "VM.get_guest_metrics still %s after %.0f s" % (NULL, TIMEOUT))
        g = x.VM_guest_metrics.get_record(gm)
        while not (g["os_version"] and g["networks"]) and time.time() < deadline:
            time.sleep(0.1)
            g = x.VM_guest_metrics.get_record(gm)
        check(g["os_version"], "os_version empty: %r" % g)
        check(g["networks"], "networks empty: %r" % g)
        check(g["live"] is True, "live %r" % g["live"])
        ok(step, "%s, %d network key(s)" % (g["os_version"].get("name", g["os_version"]), len(g["networks"])))

        step = "VM.clean_reboot"
        domid0 = int(x.VM.get_domid(vm))
        x.VM.clean_reboot(vm)
        rec = check_running(x, vm, host, step)
        ok(step, "domid %d -> %s" % (domid0, rec["domid"]))

        step = "VM.suspend"
        x.VM.suspend(vm)
        rec = check_stopped(x, vm, "Suspended", step)
        check("resume" in rec["allowed_operations"], "allowed_operations %r" % rec["allowed_operations"])
        details = failure_of(x.VM.start, vm, False, False)
        want = ["VM_BAD_POWER_STATE", vm, "halted", "suspended"]
        check(details == want, "start when suspended: %r, want %r" % (details, want))
        ok(step)

        step = "VM.resume"
        x.VM.resume(vm, False, False)
        rec = check_running(x, vm, host, step)
        ok(step, "domid %s" % rec["domid"])

        step = "VM.clean_shutdown"
        x.VM.clean_shutdown(vm)
        rec = check_stopped(x, vm, "Halted", step)
        check("start" in rec["allowed_operations"], "allowed_operations %r" % rec["allowed_operations"])
        check(rec["guest_metrics"] == NULL, "guest_metrics %r after shutdown" % rec["guest_metrics"])
        details = failure_of(x.VM.clean_shutdown, vm)
        want = ["VM_BAD_POWER_STATE", vm, "running", "halted"]
        check(details == want, "clean_shutdown when halted: %r, want %r" % (details, want))
        ok(step)

        step = "VM.destroy"
        x.VM.destroy(vm)
        details = failure_of(x.VM.get_record, vm)
        check(details == ["HANDLE_INVALID", "VM", vm], "get_record after destroy: %r" % details)
        vm = None
        details = failure_of(x.VIF.get_record, vif)
        check(details == ["HANDLE_INVALID", "VIF", vif], "VIF.get_record after VM.destroy: %r" % details)
        vif = None
        ok(step)
        print("XenAPI.py VM life cycle: all checks passed")
    except (CheckFailed, XenAPI.Failure) as e:
        sys.stderr.write("FAIL %s: %s\n" % (step, e))
        return 1
    except Exception:
        sys.stderr.write("FAIL %s:\n%s" % (step, traceback.format_exc()))
        return 1
    finally:
        if vm is not None:
            try:
                x.VM.hard_shutdown(vm)
            except Exception:
                pass
            try:
                x.VM.destroy(vm)
            except Exception:
                pass
        if vif is not None:
            try:  # VM.destroy removes its VIFs: this only tidies up after a failure
                x.VIF.destroy(vif)
            except Exception:
                pass
        try:
            x.session.logout()
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
