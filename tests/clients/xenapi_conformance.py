#!/usr/bin/env python3
"""Conformance checks of xapid against the unchanged XenAPI.py client.

Usage: xenapi_conformance.py URL USER PASSWORD [FIELDS_JSON]

FIELDS_JSON is the output of `xapid schema-fields`: with it every record of
every class must have each public field, with the XML-RPC type xapi sends
(int64 as an untyped value, i.e. a string; datetimes as dateTime.iso8601).

Uses XenAPI.py as Debian ships it in python3-os-xenapi
(os_xenapi.client.XenAPI), over XML-RPC. Prints one line per check and exits
non-zero with a message naming the failed check.
"""

import sys
import traceback
import uuid

try:
    from os_xenapi.client import XenAPI
except ImportError as e:  # pragma: no cover - reported to the Go driver
    sys.stderr.write("cannot import os_xenapi.client.XenAPI (install python3-os-xenapi): %s\n" % e)
    sys.exit(3)


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def expect_failure(what, fn, want_code, want_params=None):
    """Run fn and require XenAPI.Failure with the given code (and params)."""
    try:
        got = fn()
    except XenAPI.Failure as f:
        details = list(f.details)
        check(details and details[0] == want_code,
              "%s: want %s, got failure %r" % (what, want_code, details))
        if want_params is not None:
            check(details[1:] == list(want_params),
                  "%s: want params %r, got %r" % (what, list(want_params), details[1:]))
        return details
    raise CheckFailed("%s: want failure %s, got success %r" % (what, want_code, got))


# Types an XML-RPC value can arrive as through xmlrpc.client. xapi sends int64
# as untyped <value> (a str), floats as <double>, bools as <boolean>,
# datetimes as <dateTime.iso8601>, sets as arrays and maps/records as structs.
SCALAR_TYPES = (str, int, float, bool)


def value_ok(v):
    if isinstance(v, SCALAR_TYPES):
        return True
    if type(v).__name__ == "DateTime":  # xmlrpc.client.DateTime
        return True
    if isinstance(v, list):
        return all(value_ok(x) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and value_ok(x) for k, x in v.items())
    return False


def check_record(cls, ref, rec):
    check(isinstance(rec, dict), "%s %s: record is %s, not a struct" % (cls, ref, type(rec).__name__))
    for k, v in rec.items():
        check(isinstance(k, str), "%s %s: non-string field name %r" % (cls, ref, k))
        check(value_ok(v), "%s %s: field %s has an unexpected XML-RPC value %r" % (cls, ref, k, v))
    if "uuid" in rec:
        check(isinstance(rec["uuid"], str), "%s %s: uuid is not a string" % (cls, ref))
        try:
            uuid.UUID(rec["uuid"])
        except ValueError:
            raise CheckFailed("%s %s: uuid %r is not a UUID" % (cls, ref, rec["uuid"]))


def type_errors(ft, v, path, out):
    """Append to out where value v does not have the wire type ft."""
    kind = ft["kind"]
    if kind == "option":
        if v is not None:
            type_errors(ft["elem"], v, path, out)
        return
    want = {
        "string": str, "ref": str, "enum": str,
        "int": str,  # int64 is an untyped <value>: a string to XML-RPC clients
        "float": float, "bool": bool, "set": list, "map": dict, "record": dict,
    }.get(kind)
    if kind == "datetime":
        if type(v).__name__ != "DateTime":
            out.append("%s: %s must be a dateTime.iso8601, got %s %r" % (path, ft["name"], type(v).__name__, v))
        return
    if want is None:
        return
    if kind == "int" and isinstance(v, int) and not isinstance(v, bool):
        # valid_ref_counts-style int32 fields are typed <i4>; accept those.
        return
    if type(v) is not want:
        out.append("%s: %s must arrive as %s, got %s %r" % (path, ft["name"], want.__name__, type(v).__name__, v))
        return
    if kind == "int":
        try:
            int(v)
        except ValueError:
            out.append("%s: int field value %r is not a decimal integer" % (path, v))
    elif kind == "ref":
        if not (v.startswith("OpaqueRef:") or v == ""):
            out.append("%s: %s value %r is not an OpaqueRef" % (path, ft["name"], v))
    elif kind == "set":
        for i, x in enumerate(v):
            type_errors(ft["elem"], x, "%s[%d]" % (path, i), out)
    elif kind == "map":
        for k, x in v.items():
            if not isinstance(k, str):
                out.append("%s: map key %r is not a string" % (path, k))
            type_errors(ft["elem"], x, "%s[%r]" % (path, k), out)


def check_fields(schema, cls, ref, rec, out):
    fields = schema.get(cls)
    if fields is None:
        out.append("%s: class not in the schema fields" % cls)
        return
    for name, ft in fields.items():
        if name not in rec:
            if ft["kind"] != "option":
                out.append("%s %s: field %s missing" % (cls, ref, name))
            continue
        type_errors(ft, rec[name], "%s.%s" % (cls, name), out)
    for name in rec:
        if name not in fields:
            out.append("%s %s: field %s is not a public field of the class" % (cls, ref, name))


# --- writes on every class -------------------------------------------------

# Classes on which the conformance run writes nothing, with the reason. Every
# class with get_all_records must either be written or be listed here: a
# class that is neither fails the run.
NO_WRITE = {
    "role": "read-only: the RBAC roles are fixed by xapi (no setter, no create)",
    "Certificate": "no records and no create: certificates come from host.install_server_certificate / pool.install_ca_certificate",
    "Driver_variant": "no records and no create: driver variants are reported by the host's driver tool",
    "Host_driver": "no records and no create: host drivers are reported by the host's driver tool",
    "Feature": "no records and no create: features come from the host's licence",
    "VGPU_type": "no records and no create: vGPU types come from the host's GPUs",
    "PCI": "no records and no create: PCI devices are discovered on the host",
    "PGPU": "no records and no create: physical GPUs are discovered on the host",
    "PUSB": "no records and no create: USB devices are discovered on the host",
    "VM_guest_metrics": "no records and no create: written by a running guest's agent",
    "crashdump": "no records and no create: a crashed domain leaves one",
    "host_crashdump": "no records and no create: a host crash leaves one",
    "host_patch": "no records and no create: deprecated patch mechanism",
    "pool_patch": "no records and no create: deprecated patch mechanism",
    "pool_update": "no records and no create: pool_update.introduce needs an update ISO VDI",
    "PVS_server": "no records and no create: PVS_server.introduce needs a PVS site and farm addresses",
    "PVS_site": "no records and no create: PVS_site.introduce registers an external PVS farm",
    "Repository": "no records and no create: Repository.introduce needs a reachable yum repository",
    "SDN_controller": "no records and no create: SDN_controller.introduce needs a reachable controller",
    # classes that are empty on a fresh host and whose create takes
    # positional arguments naming hardware or external services
    "Bond": "empty; Bond.create needs two or more PIFs of physical NICs",
    "Cluster": "empty; Cluster.create needs a clustering daemon (xapi-clusterd) and a management PIF set up for it",
    "Cluster_host": "empty; Cluster_host.create needs a Cluster",
    "DR_task": "empty; DR_task.create probes a remote storage target for metadata VDIs",
    "network_sriov": "empty; network_sriov.create needs an SR-IOV capable PIF",
    "VGPU": "empty; VGPU.create needs a GPU_group with a PGPU",
    "VUSB": "empty; VUSB.create needs a USB_group with a PUSB",
    "PVS_proxy": "empty; PVS_proxy.create needs a PVS_site",
    "tunnel": "empty; tunnel.create needs the openvswitch network backend (hosts report network_backend=bridge: OPENVSWITCH_NOT_ACTIVE)",
    # written through their existing records; never created
    "SR": "SR.create would need a storage backend (written through an existing record)",
    "host": "host.create is internal to pool.join (written through an existing record)",
}

# Positional constructors (not <cls>.create(record)): a function of the
# context returning the argument list.
POSITIONAL_CREATE = {
    "task": lambda c: ["xapi-go conformance task", "made by xenapi_conformance.py"],
    "message": lambda c: ["XAPI_GO_CONFORMANCE", "5", "pool", c["pool_uuid"], "made by xenapi_conformance.py"],
    "VTPM": lambda c: [c["halted_vm"](), False],
    "VLAN": lambda c: [c["pif"], "3999", c["free_network"]],
    "blob": lambda c: ["text/plain", False],
    "GPU_group": lambda c: ["xapi-go conformance", "", {}],
    "USB_group": lambda c: ["xapi-go conformance", "", {}],
}

# Enum values to try when no record of the database shows one (the schema
# fields list an enum's name, not its values).
ENUM_FALLBACK = {
    "vbd_type": "Disk", "vbd_mode": "RO", "vdi_type": "user", "vmss_type": "snapshot",
    "vmss_frequency": "hourly", "on_normal_exit": "destroy", "on_crash_behaviour": "destroy",
    "on_softreboot_behavior": "soft_reboot", "domain_type": "hvm", "vm_power_state": "Halted",
    "vif_locking_mode": "network_default", "network_default_locking_mode": "unlocked",
    "network_purpose": "nbd", "allocation_algorithm": "breadth_first",
    "persistence_backend": "file", "primary_address_type": "IPv4", "tristate_type": "unspecified",
    "update_sync_frequency": "daily", "vm_placement_policy": "normal", "sr_health": "healthy",
    "vm_secureboot_readiness": "not_supported", "task_status_type": "pending",
}

# Values for fields whose plain default ("" or "0") the server rejects.
FIELD_HINTS = {
    ("VIF", "device"): "0", ("VBD", "userdevice"): "3", ("VIF", "MAC"): "",
    ("VM", "memory_static_max"): str(256 << 20), ("VM", "memory_dynamic_max"): str(256 << 20),
    ("VM", "memory_dynamic_min"): str(256 << 20), ("VM", "memory_static_min"): str(256 << 20),
    ("VM", "VCPUs_max"): "1", ("VM", "VCPUs_at_startup"): "1",
    ("VDI", "virtual_size"): str(1 << 20),
}

# Fields preset before <cls>.create(record) learns the rest from
# FIELD_TYPE_ERROR: an empty CD drive needs no VDI.
PRESET = {
    "VBD": {"type": "CD", "empty": True, "VDI": "OpaqueRef:NULL", "mode": "RO"},
}

MARK = "xapi-go-conformance"


def write_every_class(x, schema, methods, classes, ok):
    """Write on every class: a round trip on an existing record, or create a
    minimal record, type-check it and destroy it. Returns a summary; raises
    CheckFailed naming every class whose write failed unexpectedly."""
    methods = set(methods)
    written, skipped, unimplemented, failures = [], [], [], []
    enum_seen = {}
    records = {}
    for cls in classes:
        try:
            records[cls] = getattr(x, cls).get_all_records()
        except XenAPI.Failure as f:
            records[cls] = f.details
    # enum values seen anywhere in the database
    for cls, recs in records.items():
        if not isinstance(recs, dict) or cls not in (schema or {}):
            continue
        for rec in recs.values():
            for name, ft in schema[cls].items():
                if ft["kind"] == "enum" and isinstance(rec.get(name), str):
                    enum_seen.setdefault(ft["of"], rec[name])

    def first_ref(cls, pred=lambda r: True):
        recs = records.get(cls)
        if isinstance(recs, dict):
            for ref in sorted(recs):
                if pred(recs[ref]):
                    return ref
        return None

    pool_ref = first_ref("pool")
    ctx = {
        "pool_uuid": records["pool"][pool_ref]["uuid"],
        "vm": first_ref("VM", lambda r: not r.get("is_a_template") and not r.get("is_control_domain"))
        or first_ref("VM", lambda r: r.get("is_a_template")),
        "pif": first_ref("PIF"),
        "network": first_ref("network"),
        # VLAN.create needs a network with no PIF on the host yet
        "free_network": first_ref("network", lambda r: not r.get("PIFs")),
    }
    scratch_vms = []

    def halted_vm():
        # VTPM.create needs a halted VM that is not a template: a clone of
        # one, destroyed after the writes
        vm = first_ref("VM", lambda r: not r.get("is_a_template") and not r.get("is_control_domain")
                       and not r.get("is_a_snapshot") and r.get("power_state") == "Halted")
        if vm is None:
            vm = x.VM.clone(first_ref("VM", lambda r: r.get("is_a_template")), MARK + " VTPM")
            x.VM.set_is_a_template(vm, False)
            scratch_vms.append(vm)
        return vm
    ctx["halted_vm"] = halted_vm

    def default_value(cls, name, ft):
        if (cls, name) in FIELD_HINTS:
            return FIELD_HINTS[(cls, name)]
        kind = ft["kind"]
        if kind == "option":
            return default_value(cls, name, ft["elem"])
        if kind == "string":
            return MARK if name == "name_label" else ""
        if kind == "int":
            return "0"
        if kind == "float":
            return 0.0
        if kind == "bool":
            return False
        if kind == "datetime":
            import xmlrpc.client
            return xmlrpc.client.DateTime("19700101T00:00:00Z")
        if kind == "set":
            return []
        if kind in ("map", "record"):
            return {}
        if kind == "enum":
            return enum_seen.get(ft["of"]) or ENUM_FALLBACK.get(ft["of"], "")
        if kind == "ref":
            if ft["of"] == "VM":
                return ctx["vm"]
            return first_ref(ft["of"]) or "OpaqueRef:NULL"
        return ""

    def round_trip(cls, ref):
        api = getattr(x, cls)
        key = MARK + "-" + str(uuid.uuid4())[:8]
        if cls + ".add_to_other_config" in methods and cls + ".remove_from_other_config" in methods:
            api.add_to_other_config(ref, key, "v1")
            check(api.get_other_config(ref).get(key) == "v1", "%s.add_to_other_config: not read back" % cls)
            check(api.get_record(ref)["other_config"].get(key) == "v1", "%s.get_record: other_config not updated" % cls)
            api.remove_from_other_config(ref, key)
            check(key not in api.get_other_config(ref), "%s.remove_from_other_config: key still there" % cls)
            return "other_config add/remove"
        if cls + ".set_other_config" in methods:
            old = api.get_other_config(ref)
            new = dict(old)
            new[key] = "v1"
            api.set_other_config(ref, new)
            check(api.get_other_config(ref) == new, "%s.set_other_config: not read back" % cls)
            api.set_other_config(ref, old)
            check(api.get_other_config(ref) == old, "%s.set_other_config: not restored" % cls)
            return "set_other_config"
        for field in ("name_description", "name_label"):
            if cls + ".set_" + field in methods:
                get, set_ = getattr(api, "get_" + field), getattr(api, "set_" + field)
                old = get(ref)
                set_(ref, MARK + " \u00e9 <&>")
                check(get(ref) == MARK + " \u00e9 <&>", "%s.set_%s: not read back" % (cls, field))
                set_(ref, old)
                check(get(ref) == old, "%s.set_%s: not restored" % (cls, field))
                return "set_" + field
        return None

    def create_by_record(cls):
        api = getattr(x, cls)
        rec = dict(PRESET.get(cls, {}))
        for _ in range(len(schema.get(cls, {})) + 2):
            try:
                return api.create(rec), "create(record with %d field(s): %s)" % (len(rec), ",".join(sorted(rec)) or "none")
            except XenAPI.Failure as f:
                d = list(f.details)
                if d[:1] == ["FIELD_TYPE_ERROR"] and len(d) > 1 and d[1] in schema.get(cls, {}) and d[1] not in rec:
                    rec[d[1]] = default_value(cls, d[1], schema[cls][d[1]])
                    continue
                raise CheckFailed("%s.create(%r): %r" % (cls, rec, d))
        raise CheckFailed("%s.create: still FIELD_TYPE_ERROR after filling every field: %r" % (cls, rec))

    def create_check_destroy(cls):
        api = getattr(x, cls)
        if cls in POSITIONAL_CREATE:
            args = POSITIONAL_CREATE[cls](ctx)
            ref = api.create(*args)
            how = "create(%d positional args)" % len(args)
        else:
            ref, how = create_by_record(cls)
        try:
            check(isinstance(ref, str) and ref.startswith("OpaqueRef:"), "%s.create returned %r" % (cls, ref))
            rec = api.get_record(ref)
            check_record(cls, ref, rec)
            errs = []
            check_fields(schema, cls, ref, rec, errs)
            check(not errs, "%s: the created record:\n    %s" % (cls, "\n    ".join(errs)))
            check(ref in api.get_all(), "%s.get_all lacks the created %s" % (cls, ref))
        finally:
            api.destroy(ref)
        expect_failure("%s.get_record after destroy" % cls, lambda: api.get_record(ref), "HANDLE_INVALID", [cls, ref])
        return how + ", fields typed, destroy"

    for cls in classes:
        recs = records[cls]
        if not isinstance(recs, dict):
            skipped.append((cls, "get_all_records fails with %s" % recs[0]))
            continue
        try:
            how = None
            if recs:
                ref = first_ref(cls, lambda r: not r.get("is_control_domain")) or first_ref(cls)
                how = round_trip(cls, ref)
                if how:
                    how = "record %s: %s" % (ref, how)
            if how is None and (cls in POSITIONAL_CREATE or (cls + ".create" in methods and cls not in NO_WRITE)):
                how = create_check_destroy(cls)
            if how is None:
                if cls not in NO_WRITE:
                    failures.append("%s: nothing to write (%d records, create %s) and not listed in NO_WRITE" % (
                        cls, len(recs), "exists" if cls + ".create" in methods else "absent"))
                else:
                    skipped.append((cls, NO_WRITE[cls]))
                continue
            written.append(cls)
            ok("  write %s" % cls, how)
        except CheckFailed as e:
            failures.append("%s: %s" % (cls, e))
        except XenAPI.Failure as f:
            if list(f.details[:1]) == ["NOT_IMPLEMENTED"]:
                # reported, not failed: cmd/apicoverage lists what is missing
                unimplemented.append((cls, list(f.details)))
            else:
                failures.append("%s: unexpected failure %r" % (cls, list(f.details)))
        except Exception as e:  # transport errors, malformed responses
            failures.append("%s: %s: %s" % (cls, type(e).__name__, e))
    for vm in scratch_vms:
        x.VM.destroy(vm)
    for cls, why in skipped:
        print("skip   write %s - %s" % (cls, why))
    for cls, details in unimplemented:
        print("NOT IMPLEMENTED write %s - %r" % (cls, details))
    print("writes: %d classes written, %d skipped with a reason, %d NOT_IMPLEMENTED, %d failed" % (
        len(written), len(skipped), len(unimplemented), len(failures)))
    check(not failures, "%d class(es) could not be written:\n  %s" % (len(failures), "\n  ".join(failures)))
    return "%d classes written, %d skipped (reasons above), %d NOT_IMPLEMENTED (%s)" % (
        len(written), len(skipped), len(unimplemented), ",".join(c for c, _ in unimplemented) or "none")


def main():
    if len(sys.argv) not in (4, 5):
        sys.stderr.write(__doc__)
        return 2
    url, user, password = sys.argv[1:4]
    schema = None
    if len(sys.argv) == 5:
        import json
        with open(sys.argv[4]) as f:
            schema = json.load(f)
    step = ["start"]
    seen = {"classes": 0, "records": 0, "types": set()}

    def ok(name, detail=""):
        print("ok   %s%s" % (name, (" - " + detail) if detail else ""))
        sys.stdout.flush()

    def run(name, fn):
        step[0] = name
        detail = fn()
        ok(name, detail or "")

    session = XenAPI.Session(url)
    x = session.xenapi

    def login():
        session.login_with_password(user, password, "2.20", "xapi-go conformance")
        # The Go driver checks that no session ref a client used shows up in
        # the server's log.
        print("session-ref %s" % session.handle)
        check(isinstance(session.handle, str) and session.handle.startswith("OpaqueRef:"),
              "session ref %r is not an OpaqueRef" % session.handle)
        # XenAPI.py's login already read pool.get_all -> pool.get_master ->
        # host.get_API_version_major/minor.
        check(session.API_version.count(".") == 1, "API_version %r" % session.API_version)
        return "API %s" % session.API_version

    def pool_and_host():
        pools = x.pool.get_all_records()
        check(isinstance(pools, dict) and len(pools) == 1, "pool.get_all_records: want one pool, got %r" % (pools,))
        pref, pool = next(iter(pools.items()))
        check_record("pool", pref, pool)
        hosts = x.host.get_all_records()
        check(isinstance(hosts, dict) and len(hosts) >= 1, "host.get_all_records: no host")
        for href, h in hosts.items():
            check_record("host", href, h)
        check(pool.get("master") in hosts, "pool.master %r is not a host ref" % pool.get("master"))
        master = hosts[pool["master"]]
        for f in ("name_label", "address", "API_version_major", "API_version_minor", "software_version"):
            check(f in master, "master host record lacks %s" % f)
        check(isinstance(master["API_version_major"], str),
              "host.API_version_major (int) must arrive as a string over XML-RPC, got %r" % (master["API_version_major"],))
        check(isinstance(master["software_version"], dict), "host.software_version is not a struct")
        check(isinstance(pool["other_config"], dict), "pool.other_config is not a struct")
        return "%d host(s)" % len(hosts)

    def list_methods():
        methods = session.system.listMethods()
        check(isinstance(methods, list) and all(isinstance(m, str) for m in methods),
              "system.listMethods did not return a list of strings (it must not be wrapped in Status/Value)")
        for m in ("session.login_with_password", "VM.get_all_records", "pool.get_all_records", "host.get_record"):
            check(m in methods, "system.listMethods lacks %s" % m)
        seen["methods"] = methods
        return "%d methods" % len(methods)

    def all_records():
        classes = sorted({m[:-len(".get_all_records")] for m in seen["methods"]
                          if m.endswith(".get_all_records") and not m.startswith("Async.")})
        check(len(classes) > 20, "only %d classes have get_all_records" % len(classes))
        seen["all_classes"] = classes
        failures = []
        for cls in classes:
            try:
                recs = getattr(x, cls).get_all_records()
            except XenAPI.Failure as f:
                # Classes whose get_all_records xapi marks removed/unsupported.
                if f.details and f.details[0] in ("MESSAGE_REMOVED", "NOT_IMPLEMENTED"):
                    continue
                failures.append("%s.get_all_records: %r" % (cls, f.details))
                continue
            if not isinstance(recs, dict):
                failures.append("%s.get_all_records returned %s" % (cls, type(recs).__name__))
                continue
            seen["classes"] += 1
            for ref, rec in recs.items():
                try:
                    check(isinstance(ref, str), "%s: ref %r is not a string" % (cls, ref))
                    check_record(cls, ref, rec)
                except CheckFailed as e:
                    failures.append(str(e))
                    continue
                if schema is not None:
                    check_fields(schema, cls, ref, rec, failures)
                seen["records"] += 1
                for v in rec.values():
                    seen["types"].add(type(v).__name__)
        check(not failures, "%d get_all_records problem(s)%s:\n  %s" % (
            len(failures), " (first 40)" if len(failures) > 40 else "", "\n  ".join(failures[:40])))
        # Across the whole database these kinds of values must have appeared.
        for t in ("str", "bool", "list", "dict"):
            check(t in seen["types"], "no field value of Python type %s seen in any record" % t)
        return "%d classes, %d records, value types %s%s" % (
            seen["classes"], seen["records"], sorted(seen["types"]),
            ", fields and types checked against the schema" if schema is not None else "")

    def template():
        vms = x.VM.get_all_records()
        templates = [r for r, v in vms.items() if v.get("is_a_template")]
        check(templates, "no template VM (is_a_template=true) in VM.get_all_records")
        seen["vm"] = templates[0]
        return "%d VMs, %d templates" % (len(vms), len(templates))

    def name_label_round_trip(cls, ref):
        api = getattr(x, cls)
        old = api.get_name_label(ref)
        new = "xapi-go conformance \u00e9\u00e8 <&> " + str(uuid.uuid4())[:8]
        api.set_name_label(ref, new)
        got = api.get_name_label(ref)
        check(got == new, "%s.get_name_label after set: %r, want %r" % (cls, got, new))
        check(api.get_record(ref)["name_label"] == new, "%s.get_record name_label not updated" % cls)
        api.set_name_label(ref, old)
        check(api.get_name_label(ref) == old, "%s name_label not restored" % cls)

    def other_config_round_trip(cls, ref):
        api = getattr(x, cls)
        key = "xapi-go-conformance-" + str(uuid.uuid4())[:8]
        api.add_to_other_config(ref, key, "v1")
        oc = api.get_other_config(ref)
        check(oc.get(key) == "v1", "%s.other_config after add: %r" % (cls, oc.get(key)))
        obj_uuid = api.get_uuid(ref)
        expect_failure("%s.add_to_other_config with an existing key" % cls,
                       lambda: api.add_to_other_config(ref, key, "v2"),
                       "MAP_DUPLICATE_KEY", [cls, "other_config", obj_uuid, key])
        check(api.get_other_config(ref).get(key) == "v1", "failed add changed the value")
        api.remove_from_other_config(ref, key)
        check(key not in api.get_other_config(ref), "key still present after remove_from_other_config")
        # Removing an absent key is not an error in xapi.
        api.remove_from_other_config(ref, key)

    def pool_ref():
        return x.pool.get_all()[0]

    def errors():
        bad = "OpaqueRef:" + str(uuid.uuid4())
        expect_failure("VM.get_record(bad ref)", lambda: x.VM.get_record(bad), "HANDLE_INVALID", ["VM", bad])
        d = expect_failure("unknown method", lambda: x.VM.no_such_message_xapi_go(), "MESSAGE_METHOD_UNKNOWN")
        check(len(d) >= 2 and "no_such_message_xapi_go" in d[1], "MESSAGE_METHOD_UNKNOWN params %r lack the method name" % d)
        s2 = XenAPI.Session(url)
        expect_failure("login with 1 argument", lambda: s2.login_with_password(user),
                       "MESSAGE_PARAMETER_COUNT_MISMATCH", ["session.login_with_password", "2", "1"])
        expect_failure("login with a wrong password", lambda: s2.login_with_password(user, password + "-wrong"),
                       "SESSION_AUTHENTICATION_FAILED")
        # The 2-argument form works too (what Xen Orchestra sends).
        s2.login_with_password(user, password)
        print("session-ref %s" % s2.handle)
        s2.xenapi.session.logout()

    def logout():
        ref = session.handle
        x.session.logout()
        raw = session.session.get_uuid(ref, ref)
        check(isinstance(raw, dict) and raw.get("Status") == "Failure"
              and raw.get("ErrorDescription", [None])[0] == "SESSION_INVALID",
              "call with a logged-out session: want SESSION_INVALID, got %r" % (raw,))

    try:
        run("login", login)
        run("pool/host records", pool_and_host)
        run("system.listMethods", list_methods)
        run("every get_all_records", all_records)
        run("pool.set_name_label round trip", lambda: name_label_round_trip("pool", pool_ref()))
        run("pool other_config add/duplicate/remove", lambda: other_config_round_trip("pool", pool_ref()))
        run("error cases", errors)
        run("template VM", template)
        run("VM.set_name_label round trip", lambda: name_label_round_trip("VM", seen["vm"]))
        run("VM other_config add/duplicate/remove", lambda: other_config_round_trip("VM", seen["vm"]))
        run("write every class", lambda: write_every_class(x, schema or {}, seen["methods"], seen["all_classes"], ok))
        run("logout", logout)
    except CheckFailed as e:
        sys.stderr.write("FAIL %s: %s\n" % (step[0], e))
        return 1
    except XenAPI.Failure as f:
        sys.stderr.write("FAIL %s: unexpected XenAPI failure %r\n" % (step[0], f.details))
        traceback.print_exc()
        return 1
    except Exception as e:  # transport errors, faults, malformed responses
        sys.stderr.write("FAIL %s: %s: %s\n" % (step[0], type(e).__name__, e))
        traceback.print_exc()
        return 1
    print("XenAPI.py conformance: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
