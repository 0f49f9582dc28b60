package guest

import (
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Keys written by guest agents, relative to the domain's xenstore home.
const (
	KeyPVInstalled     = "attr/PVAddons/Installed"
	KeyPVMajor         = "attr/PVAddons/MajorVersion"
	KeyPVMinor         = "attr/PVAddons/MinorVersion"
	KeyPVMicro         = "attr/PVAddons/MicroVersion"
	KeyPVBuild         = "attr/PVAddons/BuildVersion"
	KeyPVApplication   = "attr/PVAddons/Application"
	KeyOSName          = "data/os_name"
	KeyOSUname         = "data/os_uname"
	KeyOSDistro        = "data/os_distro"
	KeyOSMajor         = "data/os_majorver"
	KeyOSMinor         = "data/os_minorver"
	KeyOSSPMajor       = "attr/os/spmajor"
	KeyOSSPMinor       = "attr/os/spminor"
	KeyHostNameDNS     = "data/host_name_dns"
	KeyDomain          = "data/domain"
	KeyMemTotal        = "data/meminfo_total"
	KeyMemFree         = "data/meminfo_free"
	KeyUpdated         = "data/updated"
	KeyTS              = "data/ts"
	KeyDeviceID        = "data/device_id"
	KeyCantSuspend     = "data/cant_suspend_reason"
	KeyHotplugVBD      = "feature/hotplug/vbd"
	KeyHotplugVIF      = "feature/hotplug/vif"
	KeyFeatureSuspend  = "control/feature-suspend"
	KeyFeatureBalloon  = "control/feature-balloon"
	DirControl         = "control"
	DirDrivers         = "drivers"
	DirVIF             = "attr/vif"
	DirSRIOV           = "xenserver/attr/net-sriov-vf"
	DirLegacyNetAttr   = "attr"
	DirFrontendVIF     = "device/vif"
	DirFrontendVBD     = "device/vbd"
	UpdatedTimeLayout  = "Mon Jan _2 15:04:05 2006"
	frontendConnected  = "4"
	defaultMicroAbsent = "-1"
)

// VIFIPv4Key is the key of the m-th IPv4 address of VIF device n.
func VIFIPv4Key(n, m int) string { return DirVIF + "/" + strconv.Itoa(n) + "/ipv4/" + strconv.Itoa(m) }

// VIFIPv6Key is the key of the m-th IPv6 address of VIF device n.
func VIFIPv6Key(n, m int) string { return DirVIF + "/" + strconv.Itoa(n) + "/ipv6/" + strconv.Itoa(m) }

// Tristate is XenAPI's tristate_type.
type Tristate string

// Tristate values.
const (
	Yes         Tristate = "yes"
	No          Tristate = "no"
	Unspecified Tristate = "unspecified"
)

// Metrics is the content of a VM_guest_metrics object derived from a tree.
// Maps are never nil.
type Metrics struct {
	OSVersion        map[string]string
	NetbiosName      map[string]string
	PVDriversVersion map[string]string
	// PVDriversDetected also gives PV_drivers_up_to_date, which XenAPI
	// defines as logically equivalent.
	PVDriversDetected bool
	Networks          map[string]string
	// Memory holds the agent's raw meminfo values ("free", "total", KiB).
	// COMPAT: xapi leaves VM_guest_metrics.memory empty; use
	// MemoryFree/MemoryTotal for the RRD instead.
	Memory map[string]string
	// MemoryFree and MemoryTotal are the agent's values in bytes, or -1.
	MemoryFree  int64
	MemoryTotal int64
	Other       map[string]string
	// DeviceID is data/device_id (Windows' PCI device id), or "".
	DeviceID         string
	CanUseHotplugVBD Tristate
	CanUseHotplugVIF Tristate
	// Live is true once the agent has stamped data/updated.
	Live bool
	// LastUpdated is the time passed to Parse.
	LastUpdated time.Time
}

// SameAs reports whether m and o carry the same guest data, ignoring
// LastUpdated and memory. xapi writes guest metrics only when this changes.
func (m Metrics) SameAs(o Metrics) bool {
	return maps.Equal(m.OSVersion, o.OSVersion) &&
		maps.Equal(m.NetbiosName, o.NetbiosName) &&
		maps.Equal(m.PVDriversVersion, o.PVDriversVersion) &&
		m.PVDriversDetected == o.PVDriversDetected &&
		maps.Equal(m.Networks, o.Networks) &&
		maps.Equal(m.Other, o.Other) &&
		m.DeviceID == o.DeviceID &&
		m.CanUseHotplugVBD == o.CanUseHotplugVBD &&
		m.CanUseHotplugVIF == o.CanUseHotplugVIF &&
		m.Live == o.Live
}

// tree is a normalized key/value tree with directory listing.
type tree struct {
	kv map[string]string
}

var absPrefix = regexp.MustCompile(`^local/domain/\d+/`)

func normalizeKey(k string) string {
	parts := strings.Split(k, "/")
	out := parts[:0]
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return absPrefix.ReplaceAllString(strings.Join(out, "/"), "")
}

func newTree(kv map[string]string) tree {
	t := tree{kv: make(map[string]string, len(kv))}
	for k, v := range kv {
		if nk := normalizeKey(k); nk != "" {
			t.kv[nk] = v
		}
	}
	return t
}

func (t tree) lookup(k string) (string, bool) {
	v, ok := t.kv[k]
	return v, ok
}

// list returns the sorted names of the direct children of dir.
func (t tree) list(dir string) []string {
	prefix := dir + "/"
	seen := map[string]struct{}{}
	for k := range t.kv {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		child, _, _ := strings.Cut(rest, "/")
		seen[child] = struct{}{}
	}
	return slices.Sorted(maps.Keys(seen))
}

func (t tree) copyKeys(dst map[string]string, pairs [][2]string) {
	for _, p := range pairs {
		if v, ok := t.lookup(p[0]); ok {
			dst[p[1]] = v
		}
	}
}

// Parse derives guest metrics from an agent tree; now becomes LastUpdated.
// It never fails: missing or malformed entries are left out.
func Parse(kv map[string]string, now time.Time) Metrics {
	t := newTree(kv)
	m := Metrics{
		OSVersion:        map[string]string{},
		NetbiosName:      map[string]string{},
		PVDriversVersion: map[string]string{},
		Networks:         map[string]string{},
		Memory:           map[string]string{},
		Other:            map[string]string{},
		MemoryFree:       -1,
		MemoryTotal:      -1,
		LastUpdated:      now,
	}

	t.copyKeys(m.PVDriversVersion, [][2]string{
		{KeyPVMajor, "major"}, {KeyPVMinor, "minor"}, {KeyPVMicro, "micro"},
		{KeyPVBuild, "build"}, {KeyPVApplication, "application"},
	})
	for _, n := range t.list(DirDrivers) {
		if _, err := strconv.Atoi(n); err != nil {
			continue
		}
		v, _ := t.lookup(DirDrivers + "/" + n)
		if name, ver, ok := parseDriver(v); ok {
			m.PVDriversVersion[name] = ver
		}
	}
	if _, ok := m.PVDriversVersion["micro"]; len(m.PVDriversVersion) > 0 && !ok {
		m.PVDriversVersion["micro"] = defaultMicroAbsent
	}

	t.copyKeys(m.OSVersion, [][2]string{
		{KeyOSName, "name"}, {KeyOSUname, "uname"}, {KeyOSDistro, "distro"},
		{KeyOSMajor, "major"}, {KeyOSMinor, "minor"},
		{KeyOSSPMajor, "spmajor"}, {KeyOSSPMinor, "spminor"},
	})

	if h, ok := t.lookup(KeyHostNameDNS); ok {
		if d, ok := t.lookup(KeyDomain); ok && d != "" {
			h += "." + d
		}
		m.NetbiosName["host_name"] = h
	}

	t.copyKeys(m.Memory, [][2]string{{KeyMemFree, "free"}, {KeyMemTotal, "total"}})
	m.MemoryFree = kibToBytes(m.Memory["free"])
	m.MemoryTotal = kibToBytes(m.Memory["total"])

	m.DeviceID, _ = t.lookup(KeyDeviceID)
	m.CanUseHotplugVBD = tristate(t, KeyHotplugVBD)
	m.CanUseHotplugVIF = tristate(t, KeyHotplugVIF)

	parseNetworks(t, m.Networks)
	parseOther(t, m.Other)

	_, m.Live = t.lookup(KeyUpdated)
	m.PVDriversDetected = pvDetected(t)
	return m
}

// parseDriver splits a Windows "Vendor NAME version attr" driver string.
func parseDriver(v string) (name, version string, ok bool) {
	vendor, rest, ok1 := strings.Cut(v, " ")
	drv, rest, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || vendor == "" || drv == "" {
		return "", "", false
	}
	ver, attr, _ := strings.Cut(rest, " ")
	attr, _, _ = strings.Cut(attr, "\n")
	if ver == "" {
		return "", "", false
	}
	return strings.ToLower(drv), vendor + " " + ver + " " + attr, true
}

func kibToBytes(s string) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<53)/1024 {
		return -1
	}
	return n * 1024
}

func tristate(t tree, key string) Tristate {
	switch v, _ := t.lookup(key); v {
	case "1":
		return Yes
	case "0":
		return No
	default:
		return Unspecified
	}
}

func parseOther(t tree, other map[string]string) {
	reason, cantSuspend := t.lookup(KeyCantSuspend)
	for _, c := range t.list(DirControl) {
		key := DirControl + "/" + c
		v, ok := t.lookup(key)
		if !ok {
			continue // a directory with no value of its own
		}
		if key == KeyFeatureSuspend && cantSuspend {
			other["data-cant-suspend-reason"] = reason
			continue
		}
		other[c] = v
	}
	if v, ok := t.lookup(KeyTS); ok {
		other["data-ts"] = v
	}
}

// indexed returns the children of dir with decimal names, sorted
// numerically; others are skipped.
func indexed(t tree, dir string) []int {
	var out []int
	for _, c := range t.list(dir) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 || strconv.Itoa(n) != c {
			continue
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

func parseNetworks(t tree, nets map[string]string) {
	vifs := t.list(DirVIF)
	if len(vifs) == 0 {
		parseLegacyNetworks(t, nets)
	}
	for _, dir := range []string{DirSRIOV, DirVIF} { // attr/vif wins on clashes
		for _, id := range t.list(dir) {
			base := dir + "/" + id
			for i, m := range indexed(t, base+"/ipv4") {
				v, ok := t.lookup(base + "/ipv4/" + strconv.Itoa(m))
				if !ok {
					continue
				}
				if i == 0 {
					nets[id+"/ip"] = v
				}
				nets[id+"/ipv4/"+strconv.Itoa(m)] = v
			}
			for _, m := range indexed(t, base+"/ipv6") {
				if v, ok := t.lookup(base + "/ipv6/" + strconv.Itoa(m)); ok {
					nets[id+"/ipv6/"+strconv.Itoa(m)] = v
				}
			}
		}
	}
}

var legacyIfacePrefixes = []string{"eth", "xenbr", "eno", "ens", "emp", "enx"}

func parseLegacyNetworks(t tree, nets map[string]string) {
	for _, iface := range t.list(DirLegacyNetAttr) {
		var n string
		for _, p := range legacyIfacePrefixes {
			if rest, ok := strings.CutPrefix(iface, p); ok {
				n = rest
				break
			}
		}
		if n == "" {
			continue
		}
		base := DirLegacyNetAttr + "/" + iface
		if v, ok := t.lookup(base + "/ip"); ok {
			nets[n+"/ip"] = v
			nets[n+"/ipv4/0"] = v
		}
		for _, m := range indexed(t, base+"/ipv6") {
			if v, ok := t.lookup(base + "/ipv6/" + strconv.Itoa(m) + "/addr"); ok {
				nets[n+"/ipv6/"+strconv.Itoa(m)] = v
			}
		}
	}
}

func pvDetected(t tree) bool {
	for _, dir := range []string{DirFrontendVIF, DirFrontendVBD} {
		for _, id := range t.list(dir) {
			if v, _ := t.lookup(dir + "/" + id + "/state"); v == frontendConnected {
				return true
			}
		}
	}
	if v, _ := t.lookup(KeyPVInstalled); v == "1" {
		return true
	}
	_, ok := t.lookup(KeyPVMajor)
	return ok
}
