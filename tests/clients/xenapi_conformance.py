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
