package guest

import (
	"maps"
	"testing"
	"time"
)

var now = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// linuxTree is what xe-daemon 8.x writes for a Debian guest with two VIFs,
// the second one dual-stack, plus the kernel's frontend state.
var linuxTree = map[string]string{
	"attr/PVAddons/Installed":    "1",
	"attr/PVAddons/MajorVersion": "8",
	"attr/PVAddons/MinorVersion": "4",
	"attr/PVAddons/MicroVersion": "0",
	"attr/PVAddons/BuildVersion": "1",
	"control/feature-balloon":    "1",
	"control/feature-shutdown":   "1",
	"control/feature-suspend":    "1",
	"data/os_name":               "Debian GNU/Linux 12 (bookworm)",
	"data/os_distro":             "debian",
	"data/os_majorver":           "12",
	"data/os_minorver":           "8",
	"data/os_uname":              "6.1.0-28-amd64",
	"data/meminfo_total":         "2015512",
	"data/meminfo_free":          "1633408",
	"attr/vif/0/ipv4/0":          "10.0.0.15",
	"attr/vif/1/ipv4/1":          "192.168.7.3",
	"attr/vif/1/ipv4/0":          "192.168.7.2",
	"attr/vif/1/ipv6/0":          "fd00::216:3eff:fe12:3456",
	"attr/vif/1/ipv6/1":          "fe80::216:3eff:fe12:3456",
	"data/volumes/0/name":        "/dev/xvda1",
	"data/volumes/0/size":        "10736369664",
	"device/vif/0/state":         "4",
	"data/updated":               "Wed Nov 25 10:00:00 2026",
}

// windowsTree is what the Windows PV tools (XenServer VM Tools 9.x) write.
var windowsTree = map[string]string{
	"/local/domain/7/attr/PVAddons/MajorVersion": "9",
	"/local/domain/7/attr/PVAddons/MinorVersion": "3",
	"/local/domain/7/attr/PVAddons/MicroVersion": "3",
	"/local/domain/7/attr/PVAddons/BuildVersion": "139",
	"/local/domain/7/drivers/0":                  "XenServer XENBUS 9.1.9.105 ",
	"/local/domain/7/drivers/1":                  "XenServer XENVIF 9.1.12.101 (checked)",
	"/local/domain/7/drivers/x":                  "XenServer IGNORED 1.0 ",
	"/local/domain/7/data/os_name":               `Microsoft Windows Server 2022 Standard|C:\Windows|\Device\Harddisk0\Partition2`,
	"/local/domain/7/data/os_majorver":           "10",
	"/local/domain/7/data/os_minorver":           "0",
	"/local/domain/7/attr/os/spmajor":            "0",
	"/local/domain/7/attr/os/spminor":            "0",
	"/local/domain/7/data/host_name_dns":         "WIN-7QK1",
	"/local/domain/7/data/domain":                "corp.example",
	"/local/domain/7/data/device_id":             "0002",
	"/local/domain/7/data/ts":                    "1",
	"/local/domain/7/data/cant_suspend_reason":   "PV drivers busy",
	"/local/domain/7/control/feature-suspend":    "1",
	"/local/domain/7/control/feature-shutdown":   "1",
	"/local/domain/7/feature/hotplug/vbd":        "1",
	"/local/domain/7/feature/hotplug/vif":        "0",
	"/local/domain/7/attr/vif/0/ipv4/0":          "172.16.1.20",
	"/local/domain/7/data/meminfo_total":         "4193848",
	"/local/domain/7/data/meminfo_free":          "2097152",
	"/local/domain/7/data/updated":               "1",
}

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		tree map[string]string
		want Metrics
	}{
		{
			name: "linux two nics ipv6",
			tree: linuxTree,
			want: Metrics{
				OSVersion: map[string]string{
					"name": "Debian GNU/Linux 12 (bookworm)", "distro": "debian",
					"major": "12", "minor": "8", "uname": "6.1.0-28-amd64",
				},
				NetbiosName:       map[string]string{},
				PVDriversVersion:  map[string]string{"major": "8", "minor": "4", "micro": "0", "build": "1"},
				PVDriversDetected: true,
				Networks: map[string]string{
					"0/ip": "10.0.0.15", "0/ipv4/0": "10.0.0.15",
					"1/ip": "192.168.7.2", "1/ipv4/0": "192.168.7.2", "1/ipv4/1": "192.168.7.3",
					"1/ipv6/0": "fd00::216:3eff:fe12:3456", "1/ipv6/1": "fe80::216:3eff:fe12:3456",
				},
				Memory:           map[string]string{"free": "1633408", "total": "2015512"},
				MemoryFree:       1633408 * 1024,
				MemoryTotal:      2015512 * 1024,
				Other:            map[string]string{"feature-balloon": "1", "feature-shutdown": "1", "feature-suspend": "1"},
				CanUseHotplugVBD: Unspecified,
				CanUseHotplugVIF: Unspecified,
				Live:             true,
				LastUpdated:      now,
			},
		},
		{
			name: "windows",
			tree: windowsTree,
			want: Metrics{
				OSVersion: map[string]string{
					"name":  `Microsoft Windows Server 2022 Standard|C:\Windows|\Device\Harddisk0\Partition2`,
					"major": "10", "minor": "0", "spmajor": "0", "spminor": "0",
				},
				NetbiosName: map[string]string{"host_name": "WIN-7QK1.corp.example"},
				PVDriversVersion: map[string]string{
					"major": "9", "minor": "3", "micro": "3", "build": "139",
					"xenbus": "XenServer 9.1.9.105 ", "xenvif": "XenServer 9.1.12.101 (checked)",
				},
				PVDriversDetected: true,
				Networks:          map[string]string{"0/ip": "172.16.1.20", "0/ipv4/0": "172.16.1.20"},
				Memory:            map[string]string{"free": "2097152", "total": "4193848"},
				MemoryFree:        2097152 * 1024,
				MemoryTotal:       4193848 * 1024,
				Other: map[string]string{
					"feature-shutdown": "1", "data-cant-suspend-reason": "PV drivers busy", "data-ts": "1",
				},
				DeviceID:         "0002",
				CanUseHotplugVBD: Yes,
				CanUseHotplugVIF: No,
				Live:             true,
				LastUpdated:      now,
			},
		},
		{
			name: "empty",
			tree: nil,
			want: Metrics{
				OSVersion: map[string]string{}, NetbiosName: map[string]string{},
				PVDriversVersion: map[string]string{}, Networks: map[string]string{},
				Memory: map[string]string{}, Other: map[string]string{},
				MemoryFree: -1, MemoryTotal: -1,
				CanUseHotplugVBD: Unspecified, CanUseHotplugVIF: Unspecified,
				LastUpdated: now,
			},
		},
		{
			name: "legacy agent layout",
			tree: map[string]string{
				"attr/eth0/ip":               "10.1.1.1",
				"attr/eth0/ipv6/0/addr":      "fe80::1",
				"attr/eth2/ip":               "10.1.1.3",
				"attr/PVAddons/MajorVersion": "5",
				"attr/PVAddons/MinorVersion": "6",
				"data/updated":               "1",
			},
			want: Metrics{
				OSVersion: map[string]string{}, NetbiosName: map[string]string{},
				PVDriversVersion:  map[string]string{"major": "5", "minor": "6", "micro": "-1"},
				PVDriversDetected: true,
				Networks: map[string]string{
					"0/ip": "10.1.1.1", "0/ipv4/0": "10.1.1.1", "0/ipv6/0": "fe80::1",
					"2/ip": "10.1.1.3", "2/ipv4/0": "10.1.1.3",
				},
				Memory: map[string]string{}, Other: map[string]string{},
				MemoryFree: -1, MemoryTotal: -1,
				CanUseHotplugVBD: Unspecified, CanUseHotplugVIF: Unspecified,
				Live: true, LastUpdated: now,
			},
		},
		{
			name: "malformed values",
			tree: map[string]string{
				"data/meminfo_total":          "lots",
				"data/meminfo_free":           "-5",
				"attr/vif/0/ipv4/x":           "10.9.9.9",
				"attr/vif/0/ipv4/01":          "10.9.9.8",
				"attr/vif/0/ipv4/2":           "10.9.9.2",
				"attr/vif/0/ipv6/abc":         "::1",
				"drivers/0":                   "garbage",
				"feature/hotplug/vbd":         "maybe",
				"//control//feature-balloon/": "1",
				"device/vbd/768/state":        "3",
			},
			want: Metrics{
				OSVersion: map[string]string{}, NetbiosName: map[string]string{},
				PVDriversVersion: map[string]string{},
				Networks:         map[string]string{"0/ip": "10.9.9.2", "0/ipv4/2": "10.9.9.2"},
				Memory:           map[string]string{"free": "-5", "total": "lots"},
				MemoryFree:       -1, MemoryTotal: -1,
				Other:            map[string]string{"feature-balloon": "1"},
				CanUseHotplugVBD: Unspecified, CanUseHotplugVIF: Unspecified,
				LastUpdated: now,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Parse(tt.tree, now)
			checkMap(t, "OSVersion", got.OSVersion, tt.want.OSVersion)
			checkMap(t, "NetbiosName", got.NetbiosName, tt.want.NetbiosName)
			checkMap(t, "PVDriversVersion", got.PVDriversVersion, tt.want.PVDriversVersion)
			checkMap(t, "Networks", got.Networks, tt.want.Networks)
			checkMap(t, "Memory", got.Memory, tt.want.Memory)
			checkMap(t, "Other", got.Other, tt.want.Other)
			if got.PVDriversDetected != tt.want.PVDriversDetected || got.Live != tt.want.Live ||
				got.MemoryFree != tt.want.MemoryFree || got.MemoryTotal != tt.want.MemoryTotal ||
				got.DeviceID != tt.want.DeviceID || got.CanUseHotplugVBD != tt.want.CanUseHotplugVBD ||
				got.CanUseHotplugVIF != tt.want.CanUseHotplugVIF || !got.LastUpdated.Equal(tt.want.LastUpdated) {
				t.Errorf("scalars:\n got %+v\nwant %+v", got, tt.want)
			}
			if !got.SameAs(tt.want) {
				t.Errorf("SameAs(want) = false")
			}
		})
	}
}

func checkMap(t *testing.T, name string, got, want map[string]string) {
	t.Helper()
	if got == nil {
		t.Errorf("%s is nil", name)
	}
	if !maps.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", name, got, want)
	}
}

func TestSameAsIgnoresTimeAndMemory(t *testing.T) {
	t.Parallel()
	a := Parse(linuxTree, now)
	tree := maps.Clone(linuxTree)
	tree["data/meminfo_free"] = "1"
	b := Parse(tree, now.Add(time.Minute))
	if !a.SameAs(b) {
		t.Error("memory or time change should not count as a change")
	}
	tree["attr/vif/0/ipv4/0"] = "10.0.0.16"
	if a.SameAs(Parse(tree, now)) {
		t.Error("IP change should count as a change")
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	if got := VIFIPv4Key(1, 2); got != "attr/vif/1/ipv4/2" {
		t.Errorf("VIFIPv4Key = %q", got)
	}
	if got := VIFIPv6Key(0, 1); got != "attr/vif/0/ipv6/1" {
		t.Errorf("VIFIPv6Key = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	f.Add("attr/vif/0/ipv4/0", "10.0.0.1", "drivers/0", "A B C D")
	f.Add("/local/domain/1/data/meminfo_total", "12", "control/feature-x", "")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		m := Parse(map[string]string{k1: v1, k2: v2}, now)
		if m.Networks == nil || m.Other == nil || m.PVDriversVersion == nil {
			t.Fatal("nil map")
		}
	})
}
