package xapi_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/store"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

// msgOK calls a method that must succeed.
func msgOK(t *testing.T, url, method string, params ...any) any {
	t.Helper()
	r, e := jsonCall(t, url, method, params...)
	if e != nil {
		t.Fatalf("%s: %v", method, e)
	}
	return r
}

// msgFail calls a method that must fail and returns the error (code first).
func msgFail(t *testing.T, url, method string, params ...any) []string {
	t.Helper()
	r, e := jsonCall(t, url, method, params...)
	if e == nil {
		t.Fatalf("%s: succeeded (%v), want an error", method, r)
	}
	return e
}

// msgFirstUUID returns the uuid of the first object of a class.
func msgFirstUUID(t *testing.T, url, sess, class string) string {
	t.Helper()
	refs := msgOK(t, url, class+".get_all", sess).([]any)
	if len(refs) == 0 {
		t.Fatalf("no %s", class)
	}
	return msgOK(t, url, class+".get_uuid", sess, refs[0]).(string)
}

// msgKeys returns the sorted keys of a map result.
func msgKeys(v any) []string {
	m, _ := v.(map[string]any)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func msgSorted(refs ...string) []string {
	out := slices.Clone(refs)
	sort.Strings(out)
	return out
}

// msgPreload stores messages directly (in batches), with the given
// timestamps and priorities, and returns their refs in the same order.
func msgPreload(t *testing.T, st *store.Store, cls datamodel.Cls, objUUID string, stamps []time.Time, priority func(i int) int64) []string {
	t.Helper()
	refs := make([]string, len(stamps))
	var ops []store.Op
	flush := func() {
		if _, err := st.Apply(context.Background(), ops...); err != nil {
			t.Fatal(err)
		}
		ops = ops[:0]
	}
	for i, ts := range stamps {
		refs[i] = datamodel.NewRef()
		rec := &datamodel.MessageRecord{UUID: datamodel.NewUUID(), Name: "PRELOADED", Priority: priority(i), Cls: cls, ObjUUID: objUUID, Timestamp: ts, Body: "b"}
		ops = append(ops, store.Create(refs[i], rec))
		if len(ops) == 2500 {
			flush()
		}
	}
	if len(ops) > 0 {
		flush()
	}
	return refs
}

func TestMessageCreateAndQuery(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	poolUUID := msgFirstUUID(t, url, s, "pool")
	vmUUID := msgFirstUUID(t, url, s, "VM")

	pm := msgOK(t, url, "message.create", s, "POOL_ALERT", 3, "Pool", poolUUID, "pool body").(string)
	vm := msgOK(t, url, "message.create", s, "VM_STARTED", 5, "VM", vmUUID, "vm body").(string)

	rec := msgOK(t, url, "message.get_record", s, vm).(map[string]any)
	if rec["name"] != "VM_STARTED" || rec["priority"] != float64(5) || rec["cls"] != "VM" || rec["obj_uuid"] != vmUUID || rec["body"] != "vm body" {
		t.Fatalf("record: %v", rec)
	}
	ts, err := datamodel.ParseDateTime(rec["timestamp"].(string))
	if err != nil || time.Since(ts) > time.Minute || time.Until(ts) > time.Minute {
		t.Fatalf("timestamp %v: %v", rec["timestamp"], err)
	}
	if got := msgOK(t, url, "message.get_by_uuid", s, rec["uuid"]); got != vm {
		t.Fatalf("get_by_uuid: %v", got)
	}
	if e := msgFail(t, url, "message.get_by_uuid", s, "no-such-uuid"); !slices.Equal(e, []string{"UUID_INVALID", "message", "no-such-uuid"}) {
		t.Fatalf("get_by_uuid unknown: %v", e)
	}
	if e := msgFail(t, url, "message.get_record", s, "OpaqueRef:nope"); !slices.Equal(e, []string{"HANDLE_INVALID", "message", "OpaqueRef:nope"}) {
		t.Fatalf("get_record unknown: %v", e)
	}

	// the object must exist and be of the class named by cls
	if e := msgFail(t, url, "message.create", s, "X", 1, "VM", "bogus-uuid", ""); !slices.Equal(e, []string{"UUID_INVALID", "VM", "bogus-uuid"}) {
		t.Fatalf("bad obj_uuid: %v", e)
	}
	if e := msgFail(t, url, "message.create", s, "X", 1, "Host", poolUUID, ""); !slices.Equal(e, []string{"UUID_INVALID", "Host", poolUUID}) {
		t.Fatalf("pool uuid as a host: %v", e)
	}

	all := msgOK(t, url, "message.get_all", s).([]any)
	if len(all) != 2 {
		t.Fatalf("get_all: %v", all)
	}
	if got := msgKeys(msgOK(t, url, "message.get_all_records", s)); !slices.Equal(got, msgSorted(pm, vm)) {
		t.Fatalf("get_all_records: %v", got)
	}
	if got := msgKeys(msgOK(t, url, "message.get_all_records_where", s, `field "name"="VM_STARTED"`)); !slices.Equal(got, []string{vm}) {
		t.Fatalf("where name: %v", got)
	}
	if got := msgKeys(msgOK(t, url, "message.get_all_records_where", s, `field "cls"="Pool" or field "priority"="5"`)); !slices.Equal(got, msgSorted(pm, vm)) {
		t.Fatalf("where or: %v", got)
	}
	if e := msgFail(t, url, "message.get_all_records_where", s, `field "nope"="x"`); e[0] != "INVALID_VALUE" {
		t.Fatalf("where unknown field: %v", e)
	}

	// get: the messages of one object, newer than since
	epoch := "19700101T00:00:00Z"
	if got := msgKeys(msgOK(t, url, "message.get", s, "VM", vmUUID, epoch)); !slices.Equal(got, []string{vm}) {
		t.Fatalf("get VM: %v", got)
	}
	if got := msgKeys(msgOK(t, url, "message.get", s, "Pool", poolUUID, epoch)); !slices.Equal(got, []string{pm}) {
		t.Fatalf("get pool: %v", got)
	}
	if got := msgKeys(msgOK(t, url, "message.get", s, "VM", vmUUID, datamodel.FormatDateTime(ts))); len(got) != 0 {
		t.Fatalf("get since own timestamp: %v", got)
	}
	if e := msgFail(t, url, "message.get", s, "VM", "bogus-uuid", epoch); !slices.Equal(e, []string{"UUID_INVALID"}) {
		t.Fatalf("get unknown object: %v", e)
	}

	// get_since: strictly newer; a later message stored directly
	later := msgPreload(t, srv.Store, datamodel.ClsVM, vmUUID, []time.Time{ts.Add(time.Hour)}, func(int) int64 { return 1 })[0]
	if got := msgKeys(msgOK(t, url, "message.get_since", s, epoch)); !slices.Equal(got, msgSorted(pm, vm, later)) {
		t.Fatalf("get_since epoch: %v", got)
	}
	if got := msgKeys(msgOK(t, url, "message.get_since", s, datamodel.FormatDateTime(ts.Add(time.Second)))); !slices.Equal(got, []string{later}) {
		t.Fatalf("get_since later: %v", got)
	}
	// a datetime without zone is UTC
	noZone := ts.Add(30 * time.Minute).Format("2006-01-02T15:04:05")
	if got := msgKeys(msgOK(t, url, "message.get_since", s, noZone)); !slices.Equal(got, []string{later}) {
		t.Fatalf("get_since %s: %v", noZone, got)
	}
	if got := msgKeys(msgOK(t, url, "message.get_since", s, datamodel.FormatDateTime(ts.Add(2*time.Hour)))); len(got) != 0 {
		t.Fatalf("get_since future: %v", got)
	}
}

func TestMessageEvents(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	ref := msgOK(t, url, "message.create", s, "ALERT", 1, "Pool", msgFirstUUID(t, url, s, "pool"), "").(string)
	r := msgOK(t, url, "event.from", s, []string{"message"}, "", 5.0).(map[string]any)
	evs, _ := r["events"].([]any)
	found := false
	for _, ev := range evs {
		e := ev.(map[string]any)
		if e["class"] == "message" && e["ref"] == ref && e["operation"] == "add" {
			snap, _ := e["snapshot"].(map[string]any)
			if snap["name"] != "ALERT" {
				t.Fatalf("snapshot: %v", snap)
			}
			found = true
		}
	}
	if !found {
		t.Fatalf("no add event for %s in %v", ref, evs)
	}

	// from that token: a new message is an add with its record, a destroyed
	// one a del without snapshot; nothing else (the message class only)
	tok := r["token"].(string)
	ref2 := msgOK(t, url, "message.create", s, "SECOND", 3, "Pool", msgFirstUUID(t, url, s, "pool"), "body 2").(string)
	msgOK(t, url, "message.destroy", s, ref)
	r = msgOK(t, url, "event.from", s, []string{"message"}, tok, 5.0).(map[string]any)
	evs, _ = r["events"].([]any)
	got := map[string]map[string]any{}
	for _, ev := range evs {
		e := ev.(map[string]any)
		if e["class"] != "message" {
			t.Fatalf("event of class %v for a message filter", e["class"])
		}
		got[e["ref"].(string)] = e
	}
	if len(got) != 2 {
		t.Fatalf("events from the token: %v", evs)
	}
	add, del := got[ref2], got[ref]
	if add == nil || add["operation"] != "add" {
		t.Fatalf("new message: %v", add)
	}
	if snap, _ := add["snapshot"].(map[string]any); snap["name"] != "SECOND" || snap["body"] != "body 2" || snap["cls"] != "Pool" || fmt.Sprint(snap["priority"]) != "3" {
		t.Fatalf("new message snapshot: %v", snap)
	}
	if del == nil || del["operation"] != "del" {
		t.Fatalf("destroyed message: %v", del)
	}
	if _, has := del["snapshot"]; has {
		t.Fatalf("del event with a snapshot: %v", del)
	}
}

func TestMessageDestroy(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	poolUUID := msgFirstUUID(t, url, s, "pool")
	create := func() string { return msgOK(t, url, "message.create", s, "M", 1, "Pool", poolUUID, "").(string) }
	count := func() int { return len(msgOK(t, url, "message.get_all", s).([]any)) }

	a := create()
	msgOK(t, url, "message.destroy", s, a)
	if e := msgFail(t, url, "message.destroy", s, a); !slices.Equal(e, []string{"HANDLE_INVALID", "message", a}) {
		t.Fatalf("destroy twice: %v", e)
	}

	b, c, d := create(), create(), create()
	msgOK(t, url, "message.destroy_many", s, []string{b, c})
	if got := msgKeys(msgOK(t, url, "message.get_all_records", s)); !slices.Equal(got, []string{d}) {
		t.Fatalf("after destroy_many: %v", got)
	}
	// as xapi: the ones before the unknown ref are destroyed, then it fails
	e1, e2 := create(), create()
	bogus := "OpaqueRef:00000000-0000-0000-0000-000000000000"
	if e := msgFail(t, url, "message.destroy_many", s, []string{e1, bogus, e2}); !slices.Equal(e, []string{"HANDLE_INVALID", "message", bogus}) {
		t.Fatalf("destroy_many unknown: %v", e)
	}
	if got := msgKeys(msgOK(t, url, "message.get_all_records", s)); !slices.Equal(got, msgSorted(d, e2)) {
		t.Fatalf("after failed destroy_many: %v", got)
	}
	msgOK(t, url, "message.destroy_many", s, []string{})
	if count() != 2 {
		t.Fatal("empty destroy_many destroyed something")
	}

	// destroy_all with filters
	msgOK(t, url, "message.destroy_all", s, map[string]string{})
	if count() != 0 {
		t.Fatal("destroy_all {} left messages")
	}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	stamps := make([]time.Time, 10)
	for i := range stamps {
		stamps[i] = base.Add(time.Duration(i) * time.Hour)
	}
	refs := msgPreload(t, srv.Store, datamodel.ClsPool, poolUUID, stamps, func(i int) int64 { return int64(i % 2) })
	// priority 1 and before 05:00 (strictly): refs 1, 3
	msgOK(t, url, "message.destroy_all", s, map[string]string{"priority": "1", "before": "20240101T05:00:00Z"})
	want := msgSorted(refs[0], refs[2], refs[4], refs[5], refs[6], refs[7], refs[8], refs[9])
	if got := msgKeys(msgOK(t, url, "message.get_all_records", s)); !slices.Equal(got, want) {
		t.Fatalf("after destroy_all priority+before: %v, want %v", got, want)
	}
	// after 07:00 (strictly), RFC 3339 without zone = UTC: refs 8, 9
	msgOK(t, url, "message.destroy_all", s, map[string]string{"after": "2024-01-01T07:00:00"})
	want = msgSorted(refs[0], refs[2], refs[4], refs[5], refs[6], refs[7])
	if got := msgKeys(msgOK(t, url, "message.get_all_records", s)); !slices.Equal(got, want) {
		t.Fatalf("after destroy_all after: %v, want %v", got, want)
	}
	for _, f := range []map[string]string{{"before": "yesterday"}, {"priority": "high"}} {
		if e := msgFail(t, url, "message.destroy_all", s, f); e[0] != "INVALID_VALUE" {
			t.Fatalf("destroy_all %v: %v", f, e)
		}
	}
	if count() != 6 {
		t.Fatal("a failed destroy_all destroyed messages")
	}
}

func TestMessageLimit(t *testing.T) {
	const limit = 10000
	srv := xapitest.NewServer(t, xapitest.Options{})
	url := srv.URL
	s := login(t, url)
	poolUUID := msgFirstUUID(t, url, s, "pool")
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	stamps := make([]time.Time, limit)
	for i := range stamps {
		stamps[i] = base.Add(time.Duration(i) * time.Second)
	}
	old := msgPreload(t, srv.Store, datamodel.ClsPool, poolUUID, stamps, func(int) int64 { return 1 })
	var fresh []string
	for range 3 {
		fresh = append(fresh, msgOK(t, url, "message.create", s, "NEW", 1, "Pool", poolUUID, "").(string))
	}
	if n := srv.Store.Count(datamodel.MessageClass); n != limit {
		t.Fatalf("%d messages kept, want %d", n, limit)
	}
	for i, r := range old[:3] {
		if _, ok := srv.Store.Get(datamodel.MessageClass, r); ok {
			t.Fatalf("oldest message %d kept", i)
		}
	}
	for _, r := range append([]string{old[3], old[limit-1]}, fresh...) {
		if _, ok := srv.Store.Get(datamodel.MessageClass, r); !ok {
			t.Fatalf("message %s deleted", r)
		}
	}
}
