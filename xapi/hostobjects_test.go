package xapi_test

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/xapi-go/xapi-go/datamodel"
	"github.com/xapi-go/xapi-go/xapi/xapitest"
)

const nullRef = "OpaqueRef:NULL"

// poolDump is every record of every class a client can list, as decoded from
// JSON-RPC: class name → ref → field → value.
type poolDump map[string]map[string]map[string]any

func (d poolDump) rec(class, ref string) map[string]any { return d[class][ref] }

// only returns the refs of class whose records satisfy keep.
func (d poolDump) only(class string, keep func(map[string]any) bool) []string {
	var out []string
	for ref, r := range d[class] {
		if keep(r) {
			out = append(out, ref)
		}
	}
	slices.Sort(out)
	return out
}

// dumpAll fetches <class>.get_all_records for every class system.listMethods
// advertises, as Xen Orchestra does on connect, and checks that every record
// holds every field with a value of the field's type.
func dumpAll(t *testing.T, url, session string) poolDump {
	t.Helper()
	ms, e := jsonCall(t, url, "system.listMethods")
	if e != nil {
		t.Fatalf("system.listMethods: %v", e)
	}
	d := poolDump{}
	for _, m := range ms.([]any) {
		name := m.(string)
		class, ok := strings.CutSuffix(name, ".get_all_records")
		if !ok || strings.Contains(class, ".") {
			continue
		}
		c, ok := datamodel.ClassByName(class)
		if !ok {
			t.Errorf("%s: unknown class", name)
			continue
		}
		res, e := jsonCall(t, url, name, session)
		if e != nil {
			// Xen Orchestra skips removed classes; explicit messages
			// implemented elsewhere may not exist yet.
			if e[0] == "MESSAGE_REMOVED" || e[0] == "NOT_IMPLEMENTED" {
				t.Logf("%s: %v", name, e)
				continue
			}
			t.Errorf("%s: %v", name, e)
			continue
		}
		recs, ok := res.(map[string]any)
		if !ok {
			t.Errorf("%s: result %T", name, res)
			continue
		}
		d[class] = map[string]map[string]any{}
		for ref, rv := range recs {
			r, ok := rv.(map[string]any)
			if !ok {
				t.Errorf("%s %s: record %T", class, ref, rv)
				continue
			}
			for _, f := range c.Fields {
				if f.Internal {
					continue
				}
				v, present := r[f.Name]
				if !present {
					t.Errorf("%s %s: field %s missing", class, ref, f.Name)
					continue
				}
				if _, err := f.Type.Decode(v); err != nil {
					t.Errorf("%s %s: field %s = %#v: %v", class, ref, f.Name, v, err)
				}
			}
			d[class][ref] = r
		}
	}
	return d
}

// refsIn lists the (class, ref) pairs held by a wire value of type ty.
func refsIn(ty *datamodel.Type, v any, out *[][2]string) {
	switch ty.Kind {
	case datamodel.KindRef:
		s, _ := v.(string)
		*out = append(*out, [2]string{ty.Of, s})
	case datamodel.KindSet:
		for _, e := range asSlice(v) {
			refsIn(ty.Elem, e, out)
		}
	case datamodel.KindMap:
		m, _ := v.(map[string]any)
		for k, e := range m {
			refsIn(ty.Key, k, out)
			refsIn(ty.Elem, e, out)
		}
	case datamodel.KindOption:
		if v != nil && ty.Elem != nil {
			refsIn(ty.Elem, v, out)
		}
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

func strs(v any) []string {
	var out []string
	for _, e := range asSlice(v) {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func versionAtLeast(v string, want ...int) bool {
	parts := strings.Split(v, ".")
	for i, w := range want {
		if i >= len(parts) {
			return false
		}
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return false
		}
		if n != w {
			return n > w
		}
	}
	return true
}

func TestHostObjects(t *testing.T) {
	srv := xapitest.NewServer(t, xapitest.Options{})
	s := login(t, srv.URL)
	d := dumpAll(t, srv.URL, s)

	for _, c := range []string{"pool", "host", "host_metrics", "host_cpu", "VM", "VM_metrics", "network", "PIF", "PIF_metrics", "SR", "PBD", "SM", "console", "role"} {
		if len(d[c]) == 0 {
			t.Errorf("no %s objects", c)
		}
	}

	t.Run("refs resolve", func(t *testing.T) {
		checked := 0
		defer func() {
			if checked < 30 {
				t.Errorf("only %d non-null refs checked", checked)
			}
		}()
		for class, recs := range d {
			c, _ := datamodel.ClassByName(class)
			for ref, r := range recs {
				for _, f := range c.Fields {
					if f.Internal {
						continue
					}
					var refs [][2]string
					refsIn(f.Type, r[f.Name], &refs)
					for _, cr := range refs {
						if cr[1] == nullRef {
							continue
						}
						checked++
						if _, ok := d[cr[0]][cr[1]]; !ok {
							t.Errorf("%s %s: %s = %q is not a %s", class, ref, f.Name, cr[1], cr[0])
						}
					}
				}
			}
		}
	})

	if len(d["pool"]) != 1 || len(d["host"]) != 1 {
		t.Fatalf("%d pools, %d hosts", len(d["pool"]), len(d["host"]))
	}
	var poolRef, hostRef string
	for r := range d["pool"] {
		poolRef = r
	}
	for r := range d["host"] {
		hostRef = r
	}
	pool, host := d.rec("pool", poolRef), d.rec("host", hostRef)

	t.Run("pool", func(t *testing.T) {
		if pool["master"] != hostRef {
			t.Errorf("master %v, host %s", pool["master"], hostRef)
		}
		sr := pool["default_SR"].(string)
		if d.rec("SR", sr) == nil || pool["suspend_image_SR"] != sr || pool["crash_dump_SR"] != sr {
			t.Errorf("default/suspend/crash SRs %v %v %v", sr, pool["suspend_image_SR"], pool["crash_dump_SR"])
		}
		if len(asSlice(pool["allowed_operations"])) == 0 {
			t.Error("pool.allowed_operations empty")
		}
		if cpu := pool["cpu_info"].(map[string]any); cpu["cpu_count"] == nil || cpu["vendor"] == nil {
			t.Errorf("pool.cpu_info %v", cpu)
		}
		if len(pool["restrictions"].(map[string]any)) == 0 {
			t.Error("pool.restrictions empty")
		}
	})

	t.Run("host", func(t *testing.T) {
		if host["name_label"] != "testhost" || host["hostname"] != "testhost" || host["address"] != "127.0.0.1" || host["enabled"] != true {
			t.Errorf("identity %v %v %v %v", host["name_label"], host["hostname"], host["address"], host["enabled"])
		}
		if num(host["API_version_major"]) < 2 {
			t.Errorf("API_version_major %v", host["API_version_major"])
		}
		sv := host["software_version"].(map[string]any)
		pv, _ := sv["platform_version"].(string)
		if !versionAtLeast(pv, 2, 9, 50) {
			t.Errorf("platform_version %q < 2.9.50", pv)
		}
		for _, k := range []string{"product_brand", "product_version", "build_number", "xapi", "xen", "linux"} {
			if sv[k] == nil || sv[k] == "" {
				t.Errorf("software_version[%s] missing", k)
			}
		}
		cpus := host["cpu_info"].(map[string]any)
		n, _ := strconv.Atoi(cpus["cpu_count"].(string))
		if n < 1 || n != len(d["host_cpu"]) || n != len(asSlice(host["host_CPUs"])) {
			t.Errorf("cpu_count %v, %d host_cpu, host_CPUs %v", cpus["cpu_count"], len(d["host_cpu"]), host["host_CPUs"])
		}
		if len(asSlice(host["allowed_operations"])) == 0 {
			t.Error("host.allowed_operations empty")
		}
		m := d.rec("host_metrics", host["metrics"].(string))
		if m == nil || m["live"] != true || num(m["memory_total"]) <= 0 || num(m["memory_free"]) > num(m["memory_total"]) {
			t.Errorf("host metrics %v", m)
		}
		numbers := map[int64]bool{}
		for _, c := range d["host_cpu"] {
			numbers[num(c["number"])] = true
		}
		if len(numbers) != n {
			t.Errorf("host_cpu numbers not distinct: %v", numbers)
		}
	})

	t.Run("control domain", func(t *testing.T) {
		dom0s := d.only("VM", func(r map[string]any) bool { return r["is_control_domain"] == true })
		if len(dom0s) != 1 {
			t.Fatalf("%d control domains", len(dom0s))
		}
		dom0 := d.rec("VM", dom0s[0])
		if dom0["resident_on"] != hostRef || dom0["power_state"] != "Running" || num(dom0["domid"]) != 0 || host["control_domain"] != dom0s[0] {
			t.Errorf("dom0 resident_on %v power %v domid %v; host.control_domain %v", dom0["resident_on"], dom0["power_state"], dom0["domid"], host["control_domain"])
		}
		if dom0["name_label"] != "Control domain on host: testhost" {
			t.Errorf("dom0 name %v", dom0["name_label"])
		}
		if !slices.Contains(strs(host["resident_VMs"]), dom0s[0]) {
			t.Errorf("dom0 not in host.resident_VMs")
		}
		if len(asSlice(dom0["consoles"])) == 0 {
			t.Error("dom0 has no console")
		}
		for _, c := range strs(dom0["consoles"]) {
			if loc, _ := d.rec("console", c)["location"].(string); !strings.HasPrefix(loc, "https://127.0.0.1/console?ref=") {
				t.Errorf("console location %q", loc)
			}
		}
	})

	t.Run("templates", func(t *testing.T) {
		tpls := d.only("VM", func(r map[string]any) bool { return r["is_a_template"] == true })
		if len(tpls) < 6 {
			t.Fatalf("%d templates", len(tpls))
		}
		names := map[string]bool{}
		for _, ref := range tpls {
			r := d.rec("VM", ref)
			names[r["name_label"].(string)] = true
			if r["power_state"] != "Halted" || r["is_default_template"] != true || r["resident_on"] != nullRef {
				t.Errorf("template %v: power %v default %v resident_on %v", r["name_label"], r["power_state"], r["is_default_template"], r["resident_on"])
			}
			ops := strs(r["allowed_operations"])
			if !slices.Contains(ops, "clone") || !slices.Contains(ops, "provision") || slices.Contains(ops, "start") {
				t.Errorf("template %v allowed_operations %v", r["name_label"], ops)
			}
			oc := r["other_config"].(map[string]any)
			if disks, _ := oc["disks"].(string); !strings.HasPrefix(disks, "<provision>") {
				t.Errorf("template %v disks %q", r["name_label"], disks)
			}
			if rec, _ := r["recommendations"].(string); !strings.HasPrefix(rec, "<restrictions>") {
				t.Errorf("template %v recommendations %q", r["name_label"], rec)
			}
			if num(r["VCPUs_max"]) < 1 || num(r["VCPUs_at_startup"]) > num(r["VCPUs_max"]) {
				t.Errorf("template %v VCPUs %v/%v", r["name_label"], r["VCPUs_at_startup"], r["VCPUs_max"])
			}
		}
		if len(names) != len(tpls) {
			t.Errorf("template names not distinct: %v", names)
		}
	})

	t.Run("VM memory and metrics", func(t *testing.T) {
		seen := map[string]string{}
		for ref, r := range d["VM"] {
			smin, dmin, dmax, smax := num(r["memory_static_min"]), num(r["memory_dynamic_min"]), num(r["memory_dynamic_max"]), num(r["memory_static_max"])
			if smin <= 0 || smin > dmin || dmin > dmax || dmax > smax {
				t.Errorf("%v: memory %d ≤ %d ≤ %d ≤ %d does not hold", r["name_label"], smin, dmin, dmax, smax)
			}
			m := r["metrics"].(string)
			if m == nullRef {
				t.Errorf("%v: no metrics", r["name_label"])
				continue
			}
			if other, dup := seen[m]; dup {
				t.Errorf("%v and %v share metrics %s", other, ref, m)
			}
			seen[m] = ref
		}
	})

	t.Run("relations", func(t *testing.T) {
		// For each (owner, set field, member, ref field): every member listed
		// in owner.set points back to owner, and every member pointing at an
		// owner is listed in the owner's set.
		pairs := [][4]string{
			{"host", "resident_VMs", "VM", "resident_on"},
			{"host", "PIFs", "PIF", "host"},
			{"host", "PBDs", "PBD", "host"},
			{"host", "host_CPUs", "host_cpu", "host"},
			{"network", "PIFs", "PIF", "network"},
			{"network", "VIFs", "VIF", "network"},
			{"SR", "PBDs", "PBD", "SR"},
			{"SR", "VDIs", "VDI", "SR"},
			{"VM", "consoles", "console", "VM"},
			{"VM", "VBDs", "VBD", "VM"},
			{"VM", "VIFs", "VIF", "VM"},
			{"VDI", "VBDs", "VBD", "VDI"},
		}
		for _, p := range pairs {
			owners, field, members, back := p[0], p[1], p[2], p[3]
			for oref, o := range d[owners] {
				for _, m := range strs(o[field]) {
					if got := d.rec(members, m)[back]; got != oref {
						t.Errorf("%s %s.%s lists %s whose %s is %v", owners, oref, field, m, back, got)
					}
				}
			}
			for mref, m := range d[members] {
				o, _ := m[back].(string)
				if o == nullRef {
					continue
				}
				if !slices.Contains(strs(d.rec(owners, o)[field]), mref) {
					t.Errorf("%s %s.%s = %s but %s.%s does not list it", members, mref, back, o, owners, field)
				}
			}
		}
	})

	t.Run("network", func(t *testing.T) {
		mgmt := d.only("PIF", func(r map[string]any) bool { return r["management"] == true })
		if len(mgmt) != 1 {
			t.Fatalf("%d management PIFs", len(mgmt))
		}
		pif := d.rec("PIF", mgmt[0])
		if pif["IP"] != "127.0.0.1" || pif["currently_attached"] != true || pif["device"] != "eth0" {
			t.Errorf("PIF %v %v %v", pif["IP"], pif["currently_attached"], pif["device"])
		}
		mac, err := net.ParseMAC(pif["MAC"].(string))
		if err != nil || len(mac) != 6 || mac[0]&2 == 0 || mac[0]&1 != 0 {
			t.Errorf("MAC %v not a locally administered unicast address (%v)", pif["MAC"], err)
		}
		if nw := d.rec("network", pif["network"].(string)); nw["bridge"] != "xenbr0" {
			t.Errorf("management network bridge %v", nw["bridge"])
		}
		if m := d.rec("PIF_metrics", pif["metrics"].(string)); m["carrier"] != true {
			t.Errorf("PIF metrics %v", m)
		}
		internal := d.only("network", func(r map[string]any) bool { return r["bridge"] == "xenapi" })
		if len(internal) != 1 {
			t.Errorf("%d host-internal networks", len(internal))
		}
	})

	t.Run("storage", func(t *testing.T) {
		sr := d.rec("SR", pool["default_SR"].(string))
		if sr["type"] != "ext" || sr["content_type"] != "user" || sr["shared"] != false || len(asSlice(sr["PBDs"])) != 1 {
			t.Errorf("local SR %v %v %v %v", sr["type"], sr["content_type"], sr["shared"], sr["PBDs"])
		}
		for ref, pbd := range d["PBD"] {
			if pbd["currently_attached"] != true || pbd["host"] != hostRef {
				t.Errorf("PBD %s attached %v host %v", ref, pbd["currently_attached"], pbd["host"])
			}
		}
		types := map[string]bool{}
		for _, sm := range d["SM"] {
			types[sm["type"].(string)] = true
		}
		for _, sr := range d["SR"] {
			if !types[sr["type"].(string)] {
				t.Errorf("SR type %v has no SM", sr["type"])
			}
		}
	})
}
