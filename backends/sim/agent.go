package sim

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/xapi-go/xapi-go/backends"
	"github.com/xapi-go/xapi-go/backends/guest"
)

// osProfile is the guest OS a simulated domain pretends to run.
type osProfile struct {
	name, distro, major, minor, uname string
	windows                           bool
}

var profiles = []struct {
	prefixes []string
	p        osProfile
}{
	{[]string{"windows", "win"}, osProfile{
		name:  `Microsoft Windows Server 2022 Standard|C:\Windows|\Device\Harddisk0\Partition2`,
		major: "10", minor: "0", windows: true,
	}},
	{[]string{"ubuntu"}, osProfile{name: "Ubuntu 22.04.5 LTS", distro: "ubuntu", major: "22", minor: "04", uname: "5.15.0-126-generic"}},
	{[]string{"rhel", "centos", "rocky", "alma", "oracle", "oel"}, osProfile{name: "Rocky Linux 9.4 (Blue Onyx)", distro: "rocky", major: "9", minor: "4", uname: "5.14.0-427.13.1.el9_4.x86_64"}},
	{[]string{"sles", "opensuse", "suse"}, osProfile{name: "SUSE Linux Enterprise Server 15 SP6", distro: "sles", major: "15", minor: "6", uname: "6.4.0-150600.23.25-default"}},
	{[]string{"debian", ""}, osProfile{name: "Debian GNU/Linux 12 (bookworm)", distro: "debian", major: "12", minor: "8", uname: "6.1.0-28-amd64"}},
}

// Spec hint keys the simulator reads from DomainSpec.Other and Platform.
const (
	HintInstallDistro = "install-distro"
	HintAgent         = "sim-agent"
	platformViridian  = "viridian"
)

func profileFor(spec backends.DomainSpec) osProfile {
	distro := strings.ToLower(spec.Other[HintInstallDistro])
	if spec.Platform[platformViridian] == "true" && distro == "" {
		distro = "windows"
	}
	for _, e := range profiles {
		for _, p := range e.prefixes {
			if strings.HasPrefix(distro, p) {
				return e.p
			}
		}
	}
	return profiles[len(profiles)-1].p
}

func bootLines(p osProfile, spec backends.DomainSpec, domid int) []string {
	if p.windows {
		return []string{
			fmt.Sprintf("SeaBIOS (version 1.16.3-xen) domid %d", domid),
			"Booting from Hard Disk...",
			"Windows Boot Manager",
		}
	}
	lines := []string{
		fmt.Sprintf("[    0.000000] Linux version %s (sim) #1 SMP", p.uname),
		fmt.Sprintf("[    0.000000] Command line: %s", orDefault(spec.Boot.Cmdline, "root=/dev/xvda1 ro console=hvc0")),
		fmt.Sprintf("[    0.010000] smpboot: Allowing %d CPUs", spec.MaxVCPUs()),
		fmt.Sprintf("[    0.020000] Memory: %dK available", spec.MemoryDynamicMax/1024),
	}
	for _, n := range spec.NICs {
		lines = append(lines, fmt.Sprintf("[    1.200000] xen_netfront: vif/%d: %s", n.Device, n.MAC))
	}
	lines = append(lines, fmt.Sprintf("%s login:", hostName(spec)))
	return lines
}

func orDefault(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func hostName(spec backends.DomainSpec) string {
	n := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		default:
			return '-'
		}
	}, spec.DomainName())
	if len(n) > 15 {
		n = n[:15]
	}
	return strings.Trim(n, "-")
}

// scheduleAgent arranges the agent's first publish for a newly built d.
func (s *Sim) scheduleAgent(d *domain, now time.Time) {
	if s.cfg.AgentDelay < 0 || d.spec.Other[HintAgent] == "none" {
		return
	}
	if s.cfg.AgentDelay == 0 {
		// Published right after the lifecycle event (see Sim.publish).
		d.agentDue = true
		return
	}
	gen := d.gen
	d.timer = time.AfterFunc(s.cfg.AgentDelay, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed || d.removed || d.gen != gen {
			return
		}
		d.timer = nil
		if d.state != backends.Running {
			d.agentDue = true
			return
		}
		s.publishAgent(d, s.cfg.Now())
	})
}

// publishAgent writes d's agent tree and announces it. Caller holds mu.
func (s *Sim) publishAgent(d *domain, now time.Time) {
	d.agentDue = false
	d.agent = agentTree(profileFor(d.spec), d.spec, d.target, d.stats.freeFrac, now)
	s.console(d, "xe-daemon: guest agent started")
	s.publish(d, backends.EventGuestAgent, "", now)
}

// agentTree builds the tree xe-guest-utilities (Linux) or the Windows PV
// tools would write for spec.
func agentTree(p osProfile, spec backends.DomainSpec, target int64, freeFrac float64, now time.Time) map[string]string {
	totalKiB := target / 1024 * 97 / 100 // the kernel keeps some for itself
	t := map[string]string{
		guest.KeyPVInstalled:           "1",
		guest.KeyPVMajor:               "8",
		guest.KeyPVMinor:               "4",
		guest.KeyPVMicro:               "0",
		guest.KeyPVBuild:               "1",
		guest.KeyOSName:                p.name,
		guest.KeyOSMajor:               p.major,
		guest.KeyOSMinor:               p.minor,
		guest.KeyMemTotal:              strconv.FormatInt(totalKiB, 10),
		guest.KeyMemFree:               strconv.FormatInt(int64(float64(totalKiB)*freeFrac), 10),
		guest.KeyFeatureBalloon:        "1",
		"control/feature-shutdown":     "1",
		"control/feature-poweroff":     "1",
		"control/feature-reboot":       "1",
		"control/feature-suspend":      "1",
		"control/feature-vcpu-hotplug": "1",
		guest.KeyUpdated:               now.UTC().Format(guest.UpdatedTimeLayout),
	}
	if p.windows {
		t[guest.KeyPVMajor], t[guest.KeyPVMinor], t[guest.KeyPVMicro], t[guest.KeyPVBuild] = "9", "3", "3", "139"
		t["drivers/0"] = "XenServer XENBUS 9.1.9.105 "
		t["drivers/1"] = "XenServer XENVBD 9.1.8.79 "
		t["drivers/2"] = "XenServer XENVIF 9.1.12.101 "
		t["drivers/3"] = "XenServer XENNET 9.1.7.65 "
		t[guest.KeyOSSPMajor] = "0"
		t[guest.KeyOSSPMinor] = "0"
		t[guest.KeyHostNameDNS] = strings.ToUpper(hostName(spec))
		t[guest.KeyHotplugVBD] = "1"
		t[guest.KeyHotplugVIF] = "1"
		delete(t, guest.KeyPVInstalled)
	} else {
		t[guest.KeyOSDistro] = p.distro
		t[guest.KeyOSUname] = p.uname
		t["data/volumes/0/name"] = "/dev/xvda1"
		if len(spec.Disks) > 0 && spec.Disks[0].Size > 0 {
			t["data/volumes/0/size"] = strconv.FormatInt(spec.Disks[0].Size, 10)
		}
	}
	for _, n := range spec.NICs {
		v4, v6ula, v6ll := addrsFor(spec.UUID, n)
		t[guest.VIFIPv4Key(n.Device, 0)] = v4
		if p.windows { // link-local only, as on an unconfigured Windows NIC
			t[guest.VIFIPv6Key(n.Device, 0)] = v6ll
		} else { // `ip addr` order: global scope first
			t[guest.VIFIPv6Key(n.Device, 0)] = v6ula
			t[guest.VIFIPv6Key(n.Device, 1)] = v6ll
		}
		t[fmt.Sprintf("device/vif/%d/state", n.Device)] = "4"
	}
	return t
}

// addrsFor derives a NIC's addresses from its MAC: IPv4 10.b3.b4.b5, and
// IPv6 ULA (fd00::/64) and link-local addresses with the MAC's EUI-64
// interface id. An unparsable MAC is replaced by one hashed from uuid and
// device.
func addrsFor(uuid string, n backends.NIC) (v4, v6ula, v6ll string) {
	hw, err := net.ParseMAC(n.MAC)
	if err != nil || len(hw) != 6 {
		h := fnv.New64a()
		fmt.Fprintf(h, "%s/%d", uuid, n.Device)
		sum := h.Sum64()
		hw = net.HardwareAddr{0x02, byte(sum >> 32), byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)}
	}
	last := hw[5]
	switch last {
	case 0:
		last = 1
	case 255:
		last = 254
	}
	v4 = netip.AddrFrom4([4]byte{10, hw[3], hw[4], last}).String()
	iid := [8]byte{hw[0] ^ 0x02, hw[1], hw[2], 0xff, 0xfe, hw[3], hw[4], hw[5]}
	var ula, ll [16]byte
	ula[0] = 0xfd
	ll[0], ll[1] = 0xfe, 0x80
	copy(ula[8:], iid[:])
	copy(ll[8:], iid[:])
	return v4, netip.AddrFrom16(ula).String(), netip.AddrFrom16(ll).String()
}
