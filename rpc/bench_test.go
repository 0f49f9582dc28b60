package rpc

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// vmFixture holds the per-record strings so that the benchmark measures the
// encoder, not string formatting.
type vmFixture struct {
	ref, uuid, name, vbd1, vbd2, vif, metrics, guestMetrics, host string
}

func makeFixtures(n int) []vmFixture {
	fs := make([]vmFixture, n)
	for i := range fs {
		s := strconv.Itoa(i)
		id := "4a4d9f0e-9b2c-4a3e-8c51-" + strings.Repeat("0", 12-len(s)) + s
		fs[i] = vmFixture{
			ref: "OpaqueRef:" + id, uuid: id, name: "vm-" + s,
			vbd1: "OpaqueRef:b1" + id[2:], vbd2: "OpaqueRef:b2" + id[2:], vif: "OpaqueRef:f1" + id[2:],
			metrics: "OpaqueRef:m1" + id[2:], guestMetrics: "OpaqueRef:g1" + id[2:], host: "OpaqueRef:h1" + id[2:],
		}
	}
	return fs
}

var fixtures = makeFixtures(10000)

var created = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// writeVM writes a VM-like record of 80 members: strings, refs, enums, ints,
// floats, bools, dates, sets and maps, as get_all_records would.
func writeVM(w Writer, i int) {
	f := &fixtures[i%len(fixtures)]
	w.BeginStruct()
	str := func(k, v string) { w.Member(k); w.String(v) }
	num := func(k string, v int64) { w.Member(k); w.Int(v) }
	flag := func(k string, v bool) { w.Member(k); w.Bool(v) }
	empty := func(k string) { w.Member(k); w.BeginArray(); w.EndArray() }
	emptyMap := func(k string) { w.Member(k); w.BeginStruct(); w.EndStruct() }
	str("uuid", f.uuid)
	w.Member("allowed_operations")
	w.BeginArray()
	for _, op := range []string{"changing_dynamic_range", "migrate_send", "pool_migrate", "changing_VCPUs_live", "suspend", "hard_reboot", "hard_shutdown", "clean_reboot", "clean_shutdown", "pause", "checkpoint", "snapshot", "export", "snapshot_with_quiesce"} {
		w.String(op)
	}
	w.EndArray()
	emptyMap("current_operations")
	str("name_label", f.name)
	str("name_description", "A test VM with <special> & \"quoted\" text")
	str("power_state", "Running")
	num("user_version", 1)
	flag("is_a_template", false)
	flag("is_default_template", false)
	str("suspend_VDI", "OpaqueRef:NULL")
	str("resident_on", f.host)
	str("scheduled_to_be_resident_on", "OpaqueRef:NULL")
	str("affinity", f.host)
	num("memory_overhead", 11534336)
	num("memory_target", 4294967296)
	num("memory_static_max", 4294967296)
	num("memory_dynamic_max", 4294967296)
	num("memory_dynamic_min", 4294967296)
	num("memory_static_min", 1073741824)
	w.Member("VCPUs_params")
	w.BeginStruct()
	str("weight", "256")
	str("cap", "0")
	w.EndStruct()
	num("VCPUs_max", 4)
	num("VCPUs_at_startup", 4)
	str("actions_after_softreboot", "soft_reboot")
	str("actions_after_shutdown", "destroy")
	str("actions_after_reboot", "restart")
	str("actions_after_crash", "restart")
	w.Member("consoles")
	w.BeginArray()
	w.String(f.vif)
	w.EndArray()
	w.Member("VIFs")
	w.BeginArray()
	w.String(f.vif)
	w.EndArray()
	w.Member("VBDs")
	w.BeginArray()
	w.String(f.vbd1)
	w.String(f.vbd2)
	w.EndArray()
	empty("VUSBs")
	empty("crash_dumps")
	empty("VTPMs")
	str("PV_bootloader", "")
	str("PV_kernel", "")
	str("PV_ramdisk", "")
	str("PV_args", "")
	str("PV_bootloader_args", "")
	str("PV_legacy_args", "")
	str("HVM_boot_policy", "BIOS order")
	w.Member("HVM_boot_params")
	w.BeginStruct()
	str("order", "cdn")
	str("firmware", "uefi")
	w.EndStruct()
	w.Member("HVM_shadow_multiplier")
	w.Float(1)
	w.Member("platform")
	w.BeginStruct()
	for _, kv := range [][2]string{{"timeoffset", "0"}, {"device-model", "qemu-upstream-uefi"}, {"secureboot", "false"}, {"viridian", "true"}, {"nx", "true"}, {"acpi", "1"}, {"apic", "true"}, {"pae", "true"}, {"hpet", "true"}, {"vga", "std"}, {"videoram", "8"}, {"cores-per-socket", "2"}} {
		str(kv[0], kv[1])
	}
	w.EndStruct()
	str("PCI_bus", "")
	w.Member("other_config")
	w.BeginStruct()
	str("base_template_name", "Windows Server 2022 (64-bit)")
	str("import_task", "OpaqueRef:NULL")
	str("mac_seed", f.uuid)
	str("install-methods", "cdrom")
	w.EndStruct()
	num("domid", int64(i%1000+1))
	str("domarch", "x64")
	w.Member("last_boot_CPU_flags")
	w.BeginStruct()
	str("vendor", "GenuineIntel")
	str("features", "1fcbfbff-f7fa3223-2d93fbff-00000523-00000001-029c6fbf-00000000-00000000-00001000-ac000400-00000000-00000000-00000000-00000000-00000000-00000000-00000000-00000000")
	w.EndStruct()
	flag("is_control_domain", false)
	str("metrics", f.metrics)
	str("guest_metrics", f.guestMetrics)
	str("last_booted_record", "")
	str("recommendations", `<restrictions><restriction field="memory-static-max" max="1649267441664"/><restriction field="vcpus-max" max="32"/></restrictions>`)
	emptyMap("xenstore_data")
	flag("ha_always_run", false)
	str("ha_restart_priority", "")
	flag("is_a_snapshot", false)
	str("snapshot_of", "OpaqueRef:NULL")
	empty("snapshots")
	w.Member("snapshot_time")
	w.DateTime(time.Unix(0, 0))
	str("transportable_snapshot_id", "")
	emptyMap("blobs")
	w.Member("tags")
	w.BeginArray()
	w.String("production")
	w.EndArray()
	w.Member("blocked_operations")
	w.BeginStruct()
	str("destroy", "protected")
	w.EndStruct()
	emptyMap("snapshot_info")
	str("snapshot_metadata", "")
	str("parent", "OpaqueRef:NULL")
	empty("children")
	emptyMap("bios_strings")
	str("protection_policy", "OpaqueRef:NULL")
	flag("is_snapshot_from_vmpp", false)
	str("snapshot_schedule", "OpaqueRef:NULL")
	flag("is_vmss_snapshot", false)
	str("appliance", "OpaqueRef:NULL")
	num("start_delay", 0)
	num("shutdown_delay", 0)
	num("order", 0)
	empty("VGPUs")
	empty("attached_PCIs")
	str("suspend_SR", "OpaqueRef:NULL")
	num("version", 0)
	str("generation_id", "0:0")
	num("hardware_platform_version", 0)
	flag("has_vendor_device", false)
	flag("requires_reboot", false)
	str("reference_label", "")
	str("domain_type", "hvm")
	emptyMap("NVRAM")
	empty("pending_guidances")
	w.Member("start_time")
	w.DateTime(created)
	w.EndStruct()
}

func writeRecords(w Writer, n int) {
	w.BeginStruct()
	for i := 0; i < n; i++ {
		w.Member(fixtures[i].ref)
		writeVM(w, i)
	}
	w.EndStruct()
}

func benchEncode(b *testing.B, mk func(io.Writer) interface {
	Writer
	Flush() error
}) {
	var cw byteCounter
	w := mk(&cw)
	writeRecords(w, 10000)
	_ = w.Flush()
	b.SetBytes(cw.n)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		writeRecords(w, 10000)
		if err := w.Flush(); err != nil {
			b.Fatal(err)
		}
	}
}

type byteCounter struct{ n int64 }

func (c *byteCounter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func BenchmarkXMLEncodeRecords(b *testing.B) {
	benchEncode(b, func(out io.Writer) interface {
		Writer
		Flush() error
	} {
		return NewXMLWriter(out)
	})
}

func BenchmarkJSONEncodeRecords(b *testing.B) {
	benchEncode(b, func(out io.Writer) interface {
		Writer
		Flush() error
	} {
		return NewJSONWriter(out)
	})
}

// BenchmarkXMLResponseRecords measures a whole XML get_all_records response
// envelope through WriteXMLResponse (pooled writer).
func BenchmarkXMLResponseRecords(b *testing.B) {
	var cw byteCounter
	resp := Response{Value: func(w Writer) { writeRecords(w, 10000) }}
	_ = WriteXMLResponse(&cw, resp)
	b.SetBytes(cw.n)
	b.ReportAllocs()
	for b.Loop() {
		_ = WriteXMLResponse(&cw, resp)
	}
}

func BenchmarkJSONResponseRecords(b *testing.B) {
	var cw byteCounter
	resp := Response{Value: func(w Writer) { writeRecords(w, 10000) }}
	_ = WriteJSONResponse(&cw, JSONRPC2, []byte("1"), resp)
	b.SetBytes(cw.n)
	b.ReportAllocs()
	for b.Loop() {
		_ = WriteJSONResponse(&cw, JSONRPC2, []byte("1"), resp)
	}
}

func BenchmarkDecodeXMLCall(b *testing.B) {
	// A VM.create call carrying one realistic record.
	var buf bytes.Buffer
	buf.WriteString(`<?xml version='1.0'?>` + "\n<methodCall>\n<methodName>VM.create</methodName>\n<params>\n<param>\n<value><string>OpaqueRef:4a4d9f0e-9b2c-4a3e-8c51-0c0a1d4f2b77</string></value>\n</param>\n<param>\n")
	xw := NewXMLWriter(&buf)
	writeVM(xw, 1)
	_ = xw.Flush()
	buf.WriteString("\n</param>\n</params>\n</methodCall>\n")
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeXMLCall(bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSONCall(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"jsonrpc":"2.0","id":1,"method":"VM.create","params":["OpaqueRef:4a4d9f0e-9b2c-4a3e-8c51-0c0a1d4f2b77",`)
	jw := NewJSONWriter(&buf)
	writeVM(jw, 1)
	_ = jw.Flush()
	buf.WriteString(`]}`)
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeJSONCall(in); err != nil {
			b.Fatal(err)
		}
	}
}

// benchServer measures a whole get_all_records-sized call through the HTTP
// server over loopback, including reading the whole body on the client side.
func benchServer(b *testing.B, path, body string) {
	d := &fakeDispatcher{}
	h := NewHandler(benchDispatcher{d}, Options{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	client := srv.Client()
	do := func() int64 {
		resp, err := client.Post(srv.URL+path, "text/xml", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err, resp.StatusCode)
		}
		return n
	}
	b.SetBytes(do())
	b.ReportAllocs()
	for b.Loop() {
		do()
	}
}

// benchDispatcher drops the call log so the benchmark does not grow memory.
type benchDispatcher struct{ d *fakeDispatcher }

func (b benchDispatcher) Dispatch(ctx context.Context, c *Call) Response {
	r := b.d.Dispatch(ctx, c)
	b.d.mu.Lock()
	b.d.calls = nil
	b.d.mu.Unlock()
	return r
}

func BenchmarkServerXMLRecords(b *testing.B) {
	benchServer(b, "/", strings.Replace(xmlCall(`<value><i4>10000</i4></value>`), "m.x", "big", 1))
}

func BenchmarkServerJSONRecords(b *testing.B) {
	benchServer(b, "/jsonrpc", `{"jsonrpc":"2.0","id":1,"method":"big","params":[10000]}`)
}
